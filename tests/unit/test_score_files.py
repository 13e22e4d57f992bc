"""``liveness score`` on folders: every file is scored or reported, CSV cells are safe.

Uses the shipped models (``models/``) and generated files only.
"""

from __future__ import annotations

import csv
import io

import pytest
from click.testing import CliRunner
from PIL import Image
from skimage import data

from cli import main


def _image(fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()[::2, ::2]).save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def png() -> bytes:
    return _image("PNG")


def test_a_folder_reports_every_file_it_does_not_score(tmp_path, png):
    """HEIC, GIF, AVIF … are rows with their error and exit status 1, never skipped."""
    folder = tmp_path / "uploads"
    (folder / "more").mkdir(parents=True)
    (folder / "face.png").write_bytes(png)
    (folder / "phone.heic").write_bytes(b"\0\0\0\x18ftypheic" + bytes(64))
    (folder / "more" / "still.gif").write_bytes(_image("GIF"))
    (folder / "more" / "new.avif").write_bytes(b"\0\0\0\x1cftypavif" + bytes(64))
    (folder / "notes.txt").write_text("not an image")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (folder / "._face.png").write_bytes(b"\0\5\26\7")            # macOS resource fork
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(main, ["score", str(folder), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "4 of 5 files could not be scored" in result.stderr
    assert "left out 2 hidden or __MACOSX files" in result.stderr
    rows = {row["path"].removeprefix(str(folder) + "/"): row
            for row in csv.DictReader(out.open(newline=""))}
    assert set(rows) == {"face.png", "phone.heic", "more/still.gif", "more/new.avif",
                         "notes.txt"}
    assert rows["face.png"]["decision"] in ("live", "spoof", "retry")
    assert rows["face.png"]["error"] == ""
    for name, code in (("phone.heic", "unsupported_format"), ("more/still.gif",
                       "unsupported_format"), ("more/new.avif", "unsupported_format"),
                       ("notes.txt", "not_an_image")):
        assert rows[name]["decision"] == "error", name
        assert rows[name]["error"].startswith(f"{code}: "), rows[name]["error"]
        assert rows[name]["score_live"] == "", name


def test_a_folder_of_images_only_exits_0(tmp_path, png):
    (tmp_path / "a.png").write_bytes(png)
    (tmp_path / "b.jpg").write_bytes(_image("JPEG", quality=90))
    result = CliRunner().invoke(main, ["score", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2


def test_score_out_escapes_file_names_that_start_like_a_formula(tmp_path, monkeypatch, png):
    """File names are user input: ``--out`` must not hand a spreadsheet a formula."""
    monkeypatch.chdir(tmp_path)
    names = ["=HYPERLINK(\"x\",\"y\").png", "+1+1.png", "@SUM(A1).png", "\tcmd.png",
             "\rcmd.png"]
    for name in names:
        (tmp_path / name).write_text("not an image")
    (tmp_path / "-face.png").write_bytes(png)
    result = CliRunner().invoke(main, ["score", "--out", "out.csv", "--", *names, "-face.png"])
    assert result.exit_code == 1, result.output
    rows = list(csv.DictReader((tmp_path / "out.csv").open(newline="")))
    assert [r["path"] for r in rows] == ["'" + n for n in [*names, "-face.png"]]
    scored = rows[-1]
    assert scored["decision"] in ("live", "spoof", "retry")
    assert 0.0 <= float(scored["score_live"]) <= 1.0           # numbers stay numbers
    assert float(scored["cnn_score"]) >= 0.0 and float(scored["fasnet_score"]) >= 0.0
    printed = CliRunner().invoke(main, ["score", "--", "-face.png"])
    assert printed.stdout.startswith("-face.png\t")               # the terminal shows it as is
