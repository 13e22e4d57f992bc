// The demo page (gateway/blueprints/demo.py): camera or file → job → decision.
"use strict";

const $ = (id) => document.getElementById(id);
const GUIDANCE = {
  no_face: "No face found: look at the camera.",
  face_too_small: "Move closer.",
  too_dark: "Too dark: turn towards a light.",
  overexposed: "Too bright: move out of direct light.",
  backlit: "The light is behind you: turn around.",
  too_blurry: "Hold still.",
  multiple_faces: "One face only, please.",
  face_partial: "Keep your whole face inside the picture.",
  face_turned: "Look straight at the camera.",
  landmarks_unreliable: "Hold your head upright and still.",
  score_in_retry_band: "Too close to call: try again.",
  challenge_failed: "The light on the face did not follow the screen's colours.",
  challenge_no_response: "The screen's light did not show on your face: turn the screen brightness up or move away from bright light, then try again.",
  challenge_unreadable: "Hold still, face the screen, and keep some of the room visible behind you while it flashes.",
};
const hint = (reason) => GUIDANCE[reason] || GUIDANCE[reason.split(":")[0]];
const GUIDE_EVERY_MS = 2500;
let stream = null;
let guiding = false;
let busy = false;
let lastJob = null;

function key() {
  const value = $("api-key").value.trim();
  sessionStorage.setItem("liveness-key", value);
  if (!value) throw new Error("Enter an API key first.");
  return value;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method, body, headers: { Authorization: `Bearer ${key()}` },
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const e = data.error || {};
    throw new Error(`${response.status} ${e.code || ""}: ${e.message || response.statusText}`);
  }
  return data;
}

function showError(error) {
  $("error").hidden = !error;
  $("error").textContent = error ? String(error.message || error) : "";
}

function cameraReady() {
  return Boolean(stream) && $("video").videoWidth > 0;
}

function frameBlob(maxSide) {
  const video = $("video");
  if (!video.videoWidth) {
    return Promise.reject(new Error("The camera has not delivered a picture yet: wait a moment."));
  }
  const canvas = $("frame");
  const scale = Math.min(1, maxSide / Math.max(video.videoWidth, video.videoHeight));
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
}

async function submit(blob, options, frames = []) {
  const form = new FormData();
  form.append("image", blob, "capture.jpg");
  for (const [name, value] of Object.entries(options)) form.append(name, value);
  frames.forEach((frame, n) => form.append("frames", frame, `frame${n}.jpg`));
  const job = await api("POST", "/v1/jobs", form);
  let state = job;
  while (!["done", "failed", "expired"].includes(state.status)) {
    state = await api("GET", `/v1/jobs/${job.id}?wait=10`);
  }
  return state;
}

function guidanceOf(job) {
  if (job.status !== "done") return `The service could not check this frame (${job.error || job.status}).`;
  const reasons = (job.face && job.face.reasons) || [];
  if (!reasons.length) return "Good: hold still and press Check liveness.";
  return reasons.map((r) => GUIDANCE[r] || r).join(" ");
}

async function guide() {
  // until the camera delivers its first frame there is nothing to check (not an error)
  if (!cameraReady() || busy || guiding) return;
  guiding = true;
  try {
    // a small frame with the cheapest test: only the face stage's reasons are used
    const job = await submit(await frameBlob(480), { tests: "fasnet" });
    if (!busy) $("guidance").textContent = guidanceOf(job);
    await api("DELETE", `/v1/jobs/${job.id}`);
    showError(null);
  } catch (error) {
    showError(error);
  } finally {
    guiding = false;
  }
}

function render(job) {
  lastJob = job;
  $("result").hidden = false;
  const decision = job.decision || job.status;
  $("decision").textContent = decision;
  $("decision").className = decision;
  $("summary").textContent = job.status === "done"
    ? `score ${job.score === null ? "—" : job.score.toFixed(3)} against threshold ${job.threshold.toFixed(3)} (${job.fusion}${job.operating_point ? ", " + job.operating_point : ""})`
    : `the job ${job.status}: ${job.error || ""}`;
  $("reasons").textContent = job.reasons && job.reasons.length
    ? "Reasons: " + job.reasons.map((r) => hint(r) ? `${r} (${hint(r)})` : r).join(", ")
    : "";
  const c = job.challenge;
  $("challenge").textContent = c
    ? `Colour-flash challenge: ${c.outcome}${c.why ? " (" + c.why + ")" : ""}` +
      (c.correlation === null ? "" : `, correlation ${c.correlation.toFixed(2)}, response ${c.response.toFixed(3)}`)
    : "";
  const body = $("tests").querySelector("tbody");
  body.replaceChildren();
  for (const [name, t] of Object.entries(job.tests_detail || {})) {
    const row = document.createElement("tr");
    const verdict = t.score === null ? `no score: ${t.error}` : (t.score >= t.threshold ? "live" : "spoof");
    for (const cell of [name, t.score === null ? "—" : t.score.toFixed(3),
      t.threshold === null ? "—" : t.threshold.toFixed(3), verdict, `${t.model} ${t.version}`]) {
      const td = document.createElement("td");
      td.textContent = cell;
      row.append(td);
    }
    body.append(row);
  }
  $("explanation-figure").hidden = true;
  const link = job.links && job.links.explanations && job.links.explanations.cnn;
  if (link) {
    fetch(link, { headers: { Authorization: `Bearer ${key()}` } })
      .then((r) => (r.ok ? r.blob() : null))
      .then((blob) => {
        if (!blob) return;
        $("explanation").src = URL.createObjectURL(blob);
        $("explanation-figure").hidden = false;
      });
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Fill the screen with each colour of a new challenge, grab a frame at the end of each.
async function flash() {
  const challenge = await api("POST", "/v1/challenges");
  const frames = [];
  const overlay = $("flash");
  overlay.hidden = false;
  try {
    for (const colour of challenge.colours) {
      overlay.style.background = colour;
      await sleep(challenge.step_ms);
      frames.push(await frameBlob(640));
    }
  } finally {
    overlay.hidden = true;
  }
  return { challenge: challenge.id, frames };
}

async function check(blob, fromCamera) {
  busy = true;
  $("check").disabled = true;
  $("guidance").textContent = "Checking…";
  try {
    const options = { explain: "true" };
    let frames = [];
    if (fromCamera && $("flash-challenge").checked) {
      $("guidance").textContent = "Look at the screen and hold still…";
      const answer = await flash();
      options.challenge = answer.challenge;
      frames = answer.frames;
      $("guidance").textContent = "Checking…";
    }
    render(await submit(blob, options, frames));
    $("guidance").textContent = "Done.";
    showError(null);
  } catch (error) {
    showError(error);
  } finally {
    busy = false;
    $("check").disabled = !stream;
  }
}

$("start-camera").addEventListener("click", async () => {
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
    // the first guidance as soon as the camera's first frame arrives, then every 2.5 s
    $("video").addEventListener("loadeddata", guide, { once: true });
    $("video").srcObject = stream;
    $("check").disabled = false;
    $("guidance").textContent = "Looking for your face…";
    setInterval(guide, GUIDE_EVERY_MS);
  } catch (error) {
    $("guidance").textContent = "No camera available: choose a photo instead.";
    showError(error);
  }
});
$("check").addEventListener("click", async () => {
  try {
    await check(await frameBlob(1280), true);
  } catch (error) {
    showError(error);
  }
});
$("file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) check(file, false);
});
$("forget").addEventListener("click", async () => {
  if (!lastJob) return;
  try {
    await api("DELETE", `/v1/jobs/${lastJob.id}`);
    $("result").hidden = true;
    lastJob = null;
  } catch (error) {
    showError(error);
  }
});
$("api-key").value = sessionStorage.getItem("liveness-key") || "";
