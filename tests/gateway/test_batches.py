"""``/v1/batches``: multipart and zip intake (with zip-bomb guards), progress, CSV."""

from __future__ import annotations

import csv
import io
import zipfile

import numpy as np

from common.result import LivenessResult, csv_row
from tests.gateway.support import (
    auth,
    build_app,
    finish,
    finished_result,
    jpeg_bytes,
    make_settings,
)


def zip_of(entries: dict[str, bytes], directories: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in directories:
            archive.writestr(zipfile.ZipInfo(name), b"")
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def post_files(client, files: list[tuple[str, bytes]], field: str = "images", owner="alice",
               **form):
    payload = {field: [(io.BytesIO(content), name) for name, content in files], **form}
    return client.post("/v1/batches", data=payload, headers=auth(owner),
                       content_type="multipart/form-data")


def item_errors(batch: dict) -> dict[str, str | None]:
    return {i["name"]: (i["error"] or "").split(":")[0] or None for i in batch["items"]}


def test_multipart_batch_reports_bad_items_without_failing(client):
    response = post_files(client, [("a.jpg", jpeg_bytes()), ("notes.txt", b"just text"),
                                   ("b.jpg", jpeg_bytes(quality=70))], tests="quality")
    assert response.status_code == 202, response.get_json()
    batch = response.get_json()
    assert response.headers["Location"] == batch["links"]["self"]
    assert batch["total"] == 3 and batch["counts"]["queued"] == 2
    assert batch["counts"]["error"] == 1
    assert item_errors(batch) == {"a.jpg": None, "notes.txt": "not_an_image", "b.jpg": None}
    again = client.get(batch["links"]["self"], headers=auth()).get_json()
    assert [i["job_id"] for i in again["items"]] == [i["job_id"] for i in batch["items"]]
    job_id = batch["items"][0]["job_id"]
    assert client.get(f"/v1/jobs/{job_id}", headers=auth()).status_code == 200


def test_batch_is_private_to_its_key(client):
    batch = post_files(client, [("a.jpg", jpeg_bytes())]).get_json()
    assert client.get(f"/v1/batches/{batch['id']}", headers=auth("bob")).status_code == 404
    assert client.get(f"/v1/batches/{batch['id']}").status_code == 401


def test_zip_batch_skips_directories_and_reports_entries(db):
    client = build_app(make_settings(max_image_bytes=100_000)).test_client()
    noise = np.random.default_rng(1).integers(0, 255, (300, 300, 3), np.uint8)
    archive = zip_of({"imgs/a.jpg": jpeg_bytes(), "imgs/readme.md": b"# hello",
                      "imgs/huge.jpg": jpeg_bytes(noise, quality=98),
                      "__MACOSX/imgs/._a.jpg": b"\x00\x05\x16\x07"},
                     directories=("imgs/",))
    for response in (post_files(client, [("set.zip", archive)], field="archive"),
                     post_files(client, [("set.zip", archive)]),  # a zip as the only image
                     client.post("/v1/batches", data=archive, headers=auth(),
                                 content_type="application/zip")):
        assert response.status_code == 202, response.get_json()
        assert item_errors(response.get_json()) == {
            "imgs/a.jpg": None, "imgs/readme.md": "not_an_image",
            "imgs/huge.jpg": "image_too_large"}


def test_zip_guards(db):
    client = build_app(make_settings(max_batch_items=3, max_zip_bytes=1_000_000)).test_client()
    too_many = zip_of({f"{n}.jpg": b"x" for n in range(4)})
    response = post_files(client, [("a.zip", too_many)], field="archive")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "too_many_items"
    bomb = zip_of({"bomb.jpg": bytes(5_000_000)})  # 5 MB of zeros, ~5 KB compressed
    assert len(bomb) < 50_000
    response = post_files(client, [("bomb.zip", bomb)], field="archive")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "archive_too_large"
    response = post_files(client, [("bad.zip", b"PK\x03\x04 definitely not a zip")],
                          field="archive")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_archive"
    response = post_files(client, [("empty.zip", zip_of({}, directories=("d/",)))],
                          field="archive")
    assert response.status_code == 422
    response = post_files(client, [(f"{n}.jpg", jpeg_bytes()) for n in range(4)])
    assert response.get_json()["error"]["code"] == "too_many_items"


def test_lying_zip_header_cannot_inflate_past_the_limits(db):
    """An entry whose header understates its size is refused, never inflated in full."""
    client = build_app(make_settings(max_image_bytes=60_000)).test_client()
    archive = bytearray(zip_of({"liar.jpg": bytes(3_000_000)}))
    # Patch the declared uncompressed size (local header and central directory) to 10.
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = archive.find(signature)
        archive[at + offset: at + offset + 4] = (10).to_bytes(4, "little")
    response = post_files(client, [("liar.zip", bytes(archive))], field="archive")
    assert response.status_code == 202, response.get_json()
    # zipfile stops at the declared size and then fails the CRC: unreadable, per item.
    assert item_errors(response.get_json())["liar.jpg"] == "empty_image"


def test_batch_request_errors(client):
    response = client.post("/v1/batches", headers=auth(), json={"images": []})
    assert response.status_code == 415
    response = post_files(client, [("a.jpg", jpeg_bytes())], field="other")
    assert response.get_json()["error"]["code"] == "unknown_field"
    response = client.post("/v1/batches", headers=auth(), content_type="multipart/form-data",
                           data={"tests": "quality"})
    assert response.get_json()["error"]["code"] == "missing_image"
    response = client.get("/v1/batches/nope?format=xml", headers=auth())
    assert response.status_code == 400
    response = client.get("/v1/batches/nope", headers=auth())
    assert response.status_code == 404


def test_batch_csv_has_the_columns_of_liveness_score(app, client):
    batch = post_files(client, [("a.jpg", jpeg_bytes()), ("b.jpg", jpeg_bytes()),
                                ("c.txt", b"text")]).get_json()
    done_id = batch["items"][0]["job_id"]
    finish(app, done_id)
    response = client.get(f"/v1/batches/{batch['id']}?format=csv", headers=auth())
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    result = finished_result()
    expected = csv_row("a.jpg", LivenessResult.from_dict(result), None, result["seconds"],
                       ("quality",))
    assert list(rows[0]) == list(expected)
    assert rows[0] == {k: str(v) for k, v in expected.items()}
    assert rows[1]["decision"] == "queued" and rows[1]["score_live"] == ""
    assert rows[2]["decision"] == "error" and rows[2]["error"].startswith("not_an_image")
    progress = client.get(f"/v1/batches/{batch['id']}", headers=auth()).get_json()
    assert progress["counts"]["done"] == 1 and progress["status"] == "running"


def test_batch_csv_escapes_file_names_that_start_like_a_formula(client):
    """Zip entry names are user input: a spreadsheet must show them, not run them."""
    names = ["=HYPERLINK(\"http://x\",\"y\").jpg", "+1+1.jpg", "-2+3.jpg", "@SUM(A1).jpg",
             "\tcmd.jpg", "\rcmd.jpg", "plain.jpg"]
    response = client.post("/v1/batches", data=zip_of({n: b"not an image" for n in names}),
                           headers={**auth(), "Content-Type": "application/zip"})
    assert response.status_code == 202, response.get_json()
    batch = response.get_json()
    text = client.get(f"/v1/batches/{batch['id']}?format=csv", headers=auth()).get_data(
        as_text=True)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [r["path"] for r in rows] == [("'" + n if n != "plain.jpg" else n) for n in names]
    assert all(r["decision"] == "error" and r["error"].startswith("not_an_image") for r in rows)


def test_deleting_a_batch_erases_it_and_its_jobs(app, client, db):
    """Issue 15.20: DELETE /v1/batches/<id> erases the batch and every job of it; a job
    of a batch deleted on its own shows ``deleted`` in the batch, not ``expired``."""
    response = post_files(client, [("a.jpg", jpeg_bytes()), ("b.jpg", jpeg_bytes()),
                                   ("c.txt", b"not an image")])
    batch = response.get_json()
    ids = [i["job_id"] for i in batch["items"] if i["job_id"]]
    assert len(ids) == 2
    assert client.delete(f"/v1/jobs/{ids[0]}", headers=auth()).status_code == 204
    view = client.get(f"/v1/batches/{batch['id']}", headers=auth()).get_json()
    statuses = {i["name"]: i["status"] for i in view["items"]}
    assert statuses == {"a.jpg": "deleted", "b.jpg": "queued", "c.txt": "error"}
    assert view["counts"]["deleted"] == 1 and view["counts"]["expired"] == 0
    csv_text = client.get(f"/v1/batches/{batch['id']}?format=csv", headers=auth()).text
    assert "deleted" in csv_text
    # another key can neither see nor erase it
    assert client.delete(f"/v1/batches/{batch['id']}", headers=auth("bob")).status_code == 404
    assert client.delete(f"/v1/batches/{batch['id']}", headers=auth()).status_code == 204
    assert client.get(f"/v1/batches/{batch['id']}", headers=auth()).status_code == 404
    assert client.get(f"/v1/jobs/{ids[1]}", headers=auth()).status_code == 404
    leftovers = [k.decode() for k in db.keys("liveness:*")
                 if any(x in k.decode() for x in (batch["id"], *ids))]
    assert leftovers == []
    assert client.delete(f"/v1/batches/{batch['id']}", headers=auth()).status_code == 404


def test_a_batch_cut_by_an_outage_leaves_no_job_behind(app, client, db, monkeypatch):
    """A batch whose third image cannot be stored answers 503, and the two jobs already
    submitted are erased: the client has no batch id to find them by."""
    import redis

    store = app.extensions["liveness"].jobs.store
    real = store.create_job
    calls = []

    def failing(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 3:
            raise redis.ConnectionError("Redis went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "create_job", failing)
    response = post_files(client, [(f"{i}.jpg", jpeg_bytes()) for i in range(4)])
    assert response.status_code == 503, response.get_json()
    assert response.get_json()["error"]["code"] == "unavailable"
    left = [k.decode() for k in db.keys("liveness:*")
            if any(job_id in k.decode() for job_id in calls)]
    assert left == []
