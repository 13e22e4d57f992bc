"""The one result model: round trips, the job view, the CSV row, the generated schemas."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import common.result
from common.result import (
    CSV_BASE_COLUMNS,
    FaceBox,
    FaceDetection,
    JobView,
    LivenessResult,
    TestOutcome,
    csv_columns,
    csv_row,
)
from gateway.schemas import JobSchema, ResultSchema

FACE = FaceDetection(FaceBox(10, 90, 90, 10), True, "hog", 2, ("multiple_faces",))
RESULT = LivenessResult(
    score=0.91, decision="live", threshold=0.5, fusion="rule", face=FACE,
    tests={"quality": TestOutcome(0.9, "wiqa-lda", "1", 0.4, 0.05),
           "cnn": TestOutcome(None, error="model_unavailable: no model")},
    seconds=0.2, reasons=("multiple_faces", "test_failed:cnn"),
    missing_tests={"cnn": "model_unavailable: no model"}, timings={"total_s": 0.3},
)


def test_every_class_round_trips_through_json():
    for value in (FACE.box, FACE, RESULT.tests["quality"], RESULT,
                  dataclasses.replace(RESULT, missing_tests=None, timings=None, score=None)):
        data = json.loads(json.dumps(value.to_dict()))
        assert type(value).from_dict(data) == value


def test_in_process_results_omit_the_service_fields():
    local = dataclasses.replace(RESULT, missing_tests=None, timings=None).to_dict()
    assert "missing_tests" not in local and "timings" not in local
    assert local["face_found"] is True and local["tests"]["cnn"]["score"] is None


def test_job_view_flattens_the_result_and_matches_its_schema():
    done = JobView("j1", "done", "2026-01-01T00:00:00.000Z", None, ("quality", "cnn"),
                   RESULT).to_dict()
    assert done["tests_detail"]["quality"]["model"] == "wiqa-lda"
    assert done["missing_tests"] == {"cnn": "model_unavailable: no model"}
    queued = JobView("j2", "queued").to_dict()
    assert queued["score"] is None and queued["tests_detail"] is None
    assert set(done) == set(queued) == set(JobSchema._declared_fields) - {"links"}
    assert JobSchema().validate({**done, "links": {"self": "/v1/jobs/j1"}}) == {}
    assert JobSchema().validate({**queued, "links": {"self": "/v1/jobs/j2"}}) == {}


def test_result_schema_is_generated_from_the_dataclass():
    fields = set(ResultSchema._declared_fields)
    assert {f.name for f in dataclasses.fields(LivenessResult)} | {"face_found"} == fields
    assert ResultSchema().validate(RESULT.to_dict()) == {}
    described = ResultSchema._declared_fields["score"].metadata["description"]
    assert "fused P(live)" in described


def test_csv_row_follows_the_documented_columns():
    row = csv_row("a.jpg", RESULT, None, 0.123456, ["quality", "cnn"])
    assert list(row) == csv_columns(["quality", "cnn"])
    assert list(row)[: len(CSV_BASE_COLUMNS)] == list(CSV_BASE_COLUMNS)
    assert row["reasons"] == "multiple_faces;test_failed:cnn" and row["cnn_score"] == ""
    assert row["seconds"] == 0.1235 and row["quality_score"] == 0.9
    failed = csv_row("b.jpg", None, "not_an_image: nope", 0.0, ["quality"])
    assert failed["decision"] == "error" and failed["score_live"] == ""


FORMULA_NAMES = ("=HYPERLINK(\"http://x\").jpg", "+1+1.jpg", "-2+3.jpg", "@SUM(A1).jpg",
                 "\tcmd.jpg", "\rcmd.jpg")


def test_csv_cells_that_start_like_a_formula_are_escaped_numbers_stay_numbers():
    """OWASP "CSV Injection": a text cell starting with = + - @ tab or CR gets a leading '."""
    for name in FORMULA_NAMES:
        row = csv_row(name, None, "not_an_image: nope", 0.0, ["quality"])
        assert row["path"] == "'" + name
        assert row["error"] == "not_an_image: nope"
    negative = dataclasses.replace(RESULT, reasons=("-x",),
                                   tests={"quality": TestOutcome(-0.5, "m", "1", 0.4, 0.05)})
    row = csv_row("a.jpg", negative, None, 0.5, ["quality"])
    assert row["path"] == "a.jpg" and row["reasons"] == "'-x"
    assert row["quality_score"] == -0.5 and row["score_live"] == 0.91  # numbers untouched
    assert row["face_found"] is True


def test_the_result_model_needs_no_numpy_or_opencv():
    tree = ast.parse(Path(common.result.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in (node.names if isinstance(node, ast.Import) else
                              [ast.alias(node.module or "")])}
    assert imported <= {"__future__", "collections", "dataclasses", "typing"}
