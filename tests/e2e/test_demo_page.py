"""The camera page end to end in headless Chromium (Debian's ``chromium``, driven by
Playwright): a fake camera plays a video made from a test image, the page guides,
flashes a colour-flash challenge while it films (which the still picture, an injected
stream, does not answer), checks, shows the decision, the challenge, the per-test
breakdown and the Grad-CAM image; the file fallback and "forget" work; a screenshot
shows the camera's picture on the page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from tests.procs import Stack

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Debian's chromium is not installed (deploy/ensure-chromium.sh installs it; "
           ".ci/run does)")


def write_y4m(path: Path, frame_rgb: np.ndarray, frames: int = 10) -> Path:
    """A YUV4MPEG2 (4:2:0) video of one RGB frame repeated: what Chromium's
    ``--use-file-for-fake-video-capture`` plays as the camera."""
    h, w = frame_rgb.shape[:2]
    yuv = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2YUV_I420)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + yuv.tobytes())
    return path


@pytest.fixture
def camera_video(tmp_path: Path) -> Path:
    face = data.astronaut()                       # 512 × 512 RGB
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 80:560] = cv2.resize(face, (480, 480), interpolation=cv2.INTER_AREA)
    return write_y4m(tmp_path / "camera.y4m", frame)


def test_the_page_checks_a_camera_and_a_file(stack: Stack, camera_video: Path,
                                            face_jpeg: bytes, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    photo = tmp_path / "photo.jpg"
    photo.write_bytes(face_jpeg)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={camera_video}"])
        try:
            page = browser.new_page(viewport={"width": 900, "height": 1200})
            # every text the error line ever shows, from before the page's own script runs
            page.add_init_script("""window.shownErrors = [];
                document.addEventListener('DOMContentLoaded', () => new MutationObserver(
                  () => window.shownErrors.push(document.getElementById('error').textContent)
                ).observe(document.getElementById('error'), {childList: true, subtree: true,
                                                            characterData: true}));""")
            page.goto(stack.url + "/")
            assert page.url.endswith("/demo")
            page.fill("#api-key", stack.api_keys["dev"])
            page.click("#start-camera")
            # the guidance comes from a real job's face stage ("Good: …" or a reason's hint)
            page.wait_for_function(
                "() => !['Start the camera, or choose a photo.', 'Looking for your face…']"
                ".includes(document.getElementById('guidance').textContent)", timeout=90_000)
            guidance = page.text_content("#guidance")
            assert "could not" not in guidance, guidance
            assert page.is_hidden("#error"), page.text_content("#error")
            # starting the camera never shows an error (the first check waits for a frame)
            assert not [e for e in page.evaluate("() => window.shownErrors") if e], (
                page.evaluate("() => window.shownErrors"))
            # the colour-flash challenge is on: the screen flashes, but the fake camera
            # plays a still picture that no screen lights — an injected stream
            assert page.is_checked("#flash-challenge")
            page.click("#check")
            page.wait_for_selector("#flash:not([hidden])", timeout=30_000)
            flashed = page.evaluate("() => getComputedStyle(document.getElementById('flash'))"
                                    ".backgroundColor")
            page.wait_for_function(
                "() => ['live', 'spoof', 'retry'].includes("
                "document.getElementById('decision').textContent)", timeout=120_000)
            challenge = page.evaluate("() => lastJob.challenge")
            # a still picture: its face's colour did not move at all
            assert challenge["outcome"] == "no_response" and challenge["frames"] == 8
            assert challenge["identity_distance"] < 0.6  # the image's person
            assert page.text_content("#decision") == "retry"
            assert f"challenge_{challenge['outcome']}" in page.text_content("#reasons")
            assert "Colour-flash challenge: " + challenge["outcome"] in (
                page.text_content("#challenge"))
            assert flashed.startswith("rgb(") and flashed != "rgba(0, 0, 0, 0)"
            rows = page.locator("#tests tbody tr")
            names = sorted(rows.nth(i).locator("td").first.text_content()
                           for i in range(rows.count()))
            assert names == ["cnn", "fasnet", "quality"]
            assert "against threshold" in page.text_content("#summary")
            page.wait_for_selector("#explanation-figure:not([hidden])", timeout=30_000)
            shot = page.screenshot(full_page=True)
            (tmp_path / "demo.png").write_bytes(shot)
            image = cv2.imdecode(np.frombuffer(shot, np.uint8), cv2.IMREAD_COLOR)
            box = page.locator("#video").bounding_box()
            video = image[int(box["y"]):int(box["y"] + box["height"]),
                          int(box["x"]):int(box["x"] + box["width"])]
            assert video.size and float(video.std()) > 20  # the camera's picture, not black
            camera_job = page.evaluate("() => lastJob.id")
            # the file fallback
            page.set_input_files("#file", str(photo))
            page.wait_for_function(f"() => lastJob && lastJob.id !== '{camera_job}'",
                                   timeout=120_000)
            file_job = page.evaluate("() => lastJob.id")
            assert page.text_content("#decision") in ("live", "spoof", "retry")
            assert page.evaluate("() => lastJob.challenge") is None  # a file: no challenge
            assert page.text_content("#challenge") == ""
            page.click("#forget")
            page.wait_for_selector("#result[hidden]", state="attached", timeout=30_000)
        finally:
            browser.close()
    status, _, body = stack.request("GET", f"/v1/jobs/{file_job}")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
    status, _, _ = stack.request("GET", f"/v1/jobs/{camera_job}")
    assert status == 200
