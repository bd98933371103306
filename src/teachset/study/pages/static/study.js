// teachset study: a trial page. The server decides what comes next; this script shows it, measures
// the response time, sends the answer (retrying on network errors: the server stores it once) and
// logs when the teaching set is reopened. It never sees the label of a test image.
"use strict";
(function () {
  var stateNode = document.getElementById("initial-state");
  if (!stateNode) { return; }
  var state = JSON.parse(stateNode.textContent);
  var phaseText = JSON.parse(document.getElementById("phase-text").textContent);
  var image = document.getElementById("stimulus");
  var choices = Array.prototype.slice.call(document.querySelectorAll("button.choice"));
  var progress = document.getElementById("progress");
  var feedback = document.getElementById("feedback");
  var errorBox = document.getElementById("error");
  var intro = document.getElementById("intro");
  var trialBox = document.getElementById("trial");
  var dialog = document.getElementById("teaching-dialog");
  var shownAt = null;
  var busy = true;
  var openedAt = null;
  var seenPhase = null;

  function setBusy(value) {
    busy = value;
    choices.forEach(function (button) { button.disabled = value; });
  }
  function showError(text) { errorBox.textContent = text; }
  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }
  function newId() {
    var bytes = new Uint8Array(12);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  async function send(url, options) {
    for (var attempt = 0; ; attempt++) {
      var response = null;
      try { response = await fetch(url, Object.assign({ credentials: "same-origin", cache: "no-store" }, options)); }
      catch (e) { response = null; }
      if (response && response.status < 500) {
        var data = null;
        try { data = await response.json(); } catch (e) { data = null; }
        if (attempt > 0) { showError(""); }
        return { status: response.status, data: data };
      }
      if (attempt >= 7) { throw new Error("unreachable"); }
      showError("Connection problem, retrying...");
      await sleep(Math.min(8000, 400 * Math.pow(2, attempt)));
    }
  }
  function post(url, body) {
    return send(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  }
  async function fetchState() {
    var r = await send("/api/state", { method: "GET" });
    if (r.status !== 200) { throw new Error("state"); }
    return r.data;
  }

  function show(next) {
    state = next;
    if (state.phase !== "quiz" && state.phase !== "test") { window.location.assign(state.url); return; }
    if (seenPhase !== state.phase && state.trial === 0) {
      seenPhase = state.phase;
      var text = phaseText[state.phase];
      document.getElementById("intro-title").textContent = text.title;
      document.getElementById("intro-text").textContent = text.text;
      trialBox.hidden = true;
      intro.hidden = false;
      document.getElementById("intro-continue").focus();
      return;
    }
    seenPhase = state.phase;
    intro.hidden = true;
    trialBox.hidden = false;
    progress.textContent = (state.phase === "quiz" ? "Quiz " : "Test ") + (state.trial + 1) + " of " + state.total;
    feedback.textContent = "";
    feedback.className = "feedback";
    setBusy(true);
    shownAt = null;
    var url = new URL(state.image, window.location.href).href;
    if (image.src === url && image.complete && image.naturalWidth > 0) {
      imageShown();  // the same trial again (after a refused request): no new load event comes
    } else {
      image.classList.remove("loaded");
      image.src = state.image;
    }
  }

  function imageShown() {
    image.classList.add("loaded");
    shownAt = performance.now();
    setBusy(false);
  }
  image.addEventListener("load", imageShown);
  image.addEventListener("error", function () {
    showError("The image did not load; trying again...");
    setTimeout(function () { image.src = state.image + "?retry=" + Date.now(); }, 1500);
  });
  document.getElementById("intro-continue").addEventListener("click", function () { show(state); });

  async function choose(answer) {
    if (busy || shownAt === null) { return; }
    setBusy(true);
    var rt = Math.min(3600000, Math.round(performance.now() - shownAt));
    try {
      var r = await post("/api/answer", { phase: state.phase, trial: state.trial, stimulus: state.stimulus, answer: answer, rt_ms: rt });
      if (r.status === 200) {
        if (r.data.feedback) {
          feedback.textContent = r.data.feedback.correct ? "Right!" : "Not quite: it was " + r.data.feedback.label + ".";
          feedback.className = "feedback " + (r.data.feedback.correct ? "right" : "wrong");
          await sleep(r.data.feedback.correct ? 600 : 1400);
        }
        show(r.data.state);
      } else if (r.status === 409) {
        show(await fetchState());  // the server knows where this session is
      } else {
        showError((r.data && r.data.error) || "Something went wrong; please reload the page.");
      }
    } catch (e) {
      showError("The server cannot be reached. Your answers so far are saved: reload the page to go on.");
    }
  }
  choices.forEach(function (button) {
    button.addEventListener("click", function () { choose(parseInt(button.getAttribute("data-answer"), 10)); });
  });
  document.addEventListener("keydown", function (event) {
    if (dialog.open || !intro.hidden) { return; }
    var n = parseInt(event.key, 10);
    if (choices.length <= 9 && n >= 1 && n <= choices.length) { choose(n - 1); }
  });

  document.getElementById("show-teaching").addEventListener("click", function () {
    dialog.showModal();
    openedAt = performance.now();
    post("/api/event", { event_id: newId(), kind: "show_teaching_set" }).catch(function () {});
  });
  dialog.addEventListener("close", function () {
    if (openedAt === null) { return; }
    var duration = Math.round(performance.now() - openedAt);
    openedAt = null;
    post("/api/event", { event_id: newId(), kind: "hide_teaching_set", duration_ms: duration }).catch(function () {});
  });

  show(state);
})();
