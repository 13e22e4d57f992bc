"""``/demo``: a page where a person tries the service with their own camera (``/``
redirects to it). Switched off with ``LIVENESS_DEMO_PAGE=false`` (both then answer 404).

Plain HTML, CSS and JavaScript served by the gateway (``gateway/templates/demo.html``,
``gateway/static/demo.*``), no build step and no CDN. The page calls the public API with
an API key the person types in (kept in the tab's ``sessionStorage`` only): camera
capture with ``getUserMedia`` and a file-upload fallback, live capture guidance from the
face stage's reason codes (a small frame submitted every few seconds with the cheapest
test, its job deleted once read), then the decision, the per-test breakdown, the reasons
and the Grad-CAM image of a full submission.
"""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, url_for

from gateway.context import gateway
from gateway.errors import ApiError

# The page and its files are the app's own templates/ and static/ (gateway/): Flask serves
# gateway/static/ at /static already.
bp = Blueprint("demo", __name__)


def _enabled() -> None:
    if not gateway().settings.demo_page:
        raise ApiError(404, "not_found", "the demo page is switched off "
                                         "(LIVENESS_DEMO_PAGE=false)")


@bp.get("/")
def index() -> Response:
    """Redirect to the demo page.
    ---
    get:
      summary: Redirects to /demo (404 when LIVENESS_DEMO_PAGE=false)
      tags: [demo]
      security: []
      responses:
        302:
          description: to /demo
          headers:
            Location: {schema: {type: string}}
        404: NotFound
    """
    _enabled()
    return redirect(url_for("demo.page"))  # type: ignore[return-value]


@bp.get("/demo")
def page() -> str:
    """The camera page.
    ---
    get:
      summary: A page to try the service with a camera or a photo (404 when
        LIVENESS_DEMO_PAGE=false)
      tags: [demo]
      security: []
      responses:
        200:
          description: OK
          content:
            text/html:
              schema: {type: string}
        404: NotFound
    """
    _enabled()
    return render_template("demo.html")
