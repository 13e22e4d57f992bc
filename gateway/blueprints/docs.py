"""``/openapi.json`` (generated) and ``/docs``, a self-contained page rendered from it.

The page needs no CDN or bundled JavaScript: it is plain HTML built from the same
OpenAPI dict, so it works on an air-gapped host.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template_string

from gateway.openapi import build_spec

bp = Blueprint("docs", __name__)

_METHODS = ("get", "post", "put", "patch", "delete")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ spec.info.title }} {{ spec.info.version }}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
code,pre{font:13px ui-monospace,monospace;background:#f4f4f4}
pre{padding:.6rem;overflow-x:auto}
.op{border:1px solid #ddd;border-radius:6px;padding:.5rem 1rem;margin:1rem 0}
.m{display:inline-block;min-width:4.5rem;font-weight:bold;text-transform:uppercase}
.get{color:#1565c0}.post{color:#2e7d32}.delete{color:#c62828}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}
</style></head><body>
<h1>{{ spec.info.title }} <small>{{ spec.info.version }}</small></h1>
<div>{% for para in spec.info.description.split("\\n\\n") %}<p>{{ para }}</p>{% endfor %}</div>
<p>Machine-readable: <a href="{{ openapi_url }}">openapi.json</a> (OpenAPI {{ spec.openapi }}).</p>
<h2>Operations</h2>
<ul>{% for op in ops %}<li><a href="#{{ op.anchor }}"><span class="m {{ op.method }}">
{{ op.method }}</span> <code>{{ op.path }}</code></a> — {{ op.summary }}</li>{% endfor %}</ul>
{% for op in ops %}
<div class="op" id="{{ op.anchor }}">
<h3><span class="m {{ op.method }}">{{ op.method }}</span> <code>{{ op.path }}</code></h3>
<p><b>{{ op.summary }}</b></p>{% if op.description %}<p>{{ op.description }}</p>{% endif %}
<p>Auth: {{ "none" if not op.secured else "API key (Bearer or X-API-Key)" }}</p>
{% if op.parameters %}<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>required</th>
<th>schema</th><th>description</th></tr>{% for p in op.parameters %}<tr><td><code>{{ p.name }}
</code></td><td>{{ p.in }}</td><td>{{ p.required }}</td><td><code>{{ p.schema | tojson }}</code>
</td><td>{{ p.description or "" }}</td></tr>{% endfor %}</table>{% endif %}
{% if op.body %}<h4>Request body</h4><ul>{% for mt, schema in op.body %}<li><code>{{ mt }}</code>:
{{ schema | safe }}</li>{% endfor %}</ul>{% endif %}
<h4>Responses</h4><table><tr><th>status</th><th>description</th><th>body</th></tr>
{% for status, desc, bodies in op.responses %}<tr><td>{{ status }}</td><td>{{ desc }}</td><td>
{% for mt, schema in bodies %}<code>{{ mt }}</code> {{ schema | safe }}<br>{% endfor %}</td></tr>
{% endfor %}</table></div>
{% endfor %}
<h2>Schemas</h2>
{% for name, schema in schemas %}<h3 id="schema-{{ name }}">{{ name }}</h3>
<pre>{{ schema }}</pre>{% endfor %}
</body></html>
"""


def _spec() -> dict[str, Any]:
    cache = current_app.extensions.setdefault("liveness_openapi", {})
    if "spec" not in cache:
        cache["spec"] = build_spec(current_app)
    return cache["spec"]


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """OpenAPI document.
    ---
    get:
      summary: This API's OpenAPI 3 document (generated from the code)
      tags: [docs]
      security: []
      responses:
        200:
          description: OK
          content:
            application/json:
              schema: {type: object}
    """
    return jsonify(_spec())


def _schema_html(schema: dict[str, Any]) -> str:
    """A schema reference as a link to its section, else its JSON (escaped)."""
    from markupsafe import escape

    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[1]
        return f'<a href="#schema-{escape(name)}">{escape(name)}</a>'
    return f"<code>{escape(json.dumps(schema))}</code>"


def _resolve_response(spec: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    ref = response.get("$ref", "")
    if ref.startswith("#/components/responses/"):
        return spec["components"]["responses"][ref.rsplit("/", 1)[1]]
    return response


def _operations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    ops = []
    default_security = spec.get("security")
    for path, item in sorted(spec.get("paths", {}).items()):
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            body = [(mt, _schema_html(c.get("schema", {})))
                    for mt, c in op.get("requestBody", {}).get("content", {}).items()]
            responses = []
            for status, raw in op.get("responses", {}).items():
                resp = _resolve_response(spec, raw)
                bodies = [(mt, _schema_html(c.get("schema", {})))
                          for mt, c in resp.get("content", {}).items()]
                responses.append((status, resp.get("description", ""), bodies))
            ops.append({
                "method": method, "path": path,
                "anchor": method + "-" + "".join(c if c.isalnum() else "-" for c in path),
                "summary": op.get("summary", ""), "description": op.get("description", ""),
                "secured": bool(op.get("security", default_security)),
                "parameters": op.get("parameters", []), "body": body, "responses": responses,
            })
    return ops


@bp.get("/docs")
def docs_page() -> str:
    """API documentation page.
    ---
    get:
      summary: Human-readable API documentation (offline, no external assets)
      tags: [docs]
      security: []
      responses:
        200:
          description: OK
          content:
            text/html:
              schema: {type: string}
    """
    spec = _spec()
    schemas = [(name, json.dumps(schema, indent=2))
               for name, schema in sorted(spec.get("components", {}).get("schemas", {}).items())]
    return render_template_string(_PAGE, spec=spec, ops=_operations(spec), schemas=schemas,
                                  openapi_url="/openapi.json")
