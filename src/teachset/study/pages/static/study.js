// teachset study: the participant pages' script. The server decides what comes next; this script
// shows it, measures the response time, sends the answer (retrying on network errors: the server
// stores it once), and records what the server cannot see: the screen and window size (at
// consent), the teaching set reopened, a teaching aid opened, the tab left and come back to,
// breaks. It never sees the label of a test image.
"use strict";
(function () {
  var page = document.body.getAttribute("data-page");
  var leaving = false;  // set when this page navigates on purpose: that is not "leaving the tab"

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }
  function newId() {
    var bytes = new Uint8Array(12);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function go(url) { leaving = true; window.location.assign(url); }
  function eventBody(kind, duration) {  // an event's id makes it stored once however often it is sent
    var body = { event_id: newId(), kind: kind };
    if (duration !== undefined) { body.duration_ms = Math.max(0, Math.round(duration)); }
    return body;
  }
  function postEvent(kind, duration) {
    return fetch("/api/event", { method: "POST", credentials: "same-origin", keepalive: true,
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(eventBody(kind, duration)) }).catch(function () {});
  }
  // a dialog whose openings are timed: open(kind) shows it and sends kind; its closing sends closeKind with how long
  // it was open
  function timedDialog(dialog, closeKind, send) {
    var openedAt = null;
    dialog.addEventListener("close", function () {
      if (openedAt === null) { return; }
      var duration = performance.now() - openedAt;
      openedAt = null;
      send(closeKind, duration);
    });
    return function open(kind) { dialog.showModal(); openedAt = performance.now(); send(kind); };
  }

  // ---- consent: the environment, and a phone refused early where the study is for computers -------
  function consentPage() {
    var form = document.querySelector("form.consent-form");
    var pointer = window.matchMedia("(any-pointer: fine)").matches ? "fine"
      : (window.matchMedia("(any-pointer: coarse)").matches ? "coarse" : "none");
    var values = { screen_w: screen.width, screen_h: screen.height, window_w: window.innerWidth,
      window_h: window.innerHeight, pixel_ratio: Math.round((window.devicePixelRatio || 1) * 1000) / 1000, pointer: pointer };
    Array.prototype.forEach.call(form.querySelectorAll("input[data-environment]"), function (input) {
      input.value = String(values[input.getAttribute("data-environment")]);
    });
    if (form.hasAttribute("data-desktop-only") && pointer === "coarse") {
      document.getElementById("device-note").hidden = false;
      document.getElementById("start").disabled = true;
    }
  }

  // ---- the teaching set's images: each opens large on a click; in a condition with teaching aids, a
  // button under an image opens its strips (each opening and closing is an event, sent in order) ------
  function teachingViews(send) {
    var viewer = document.getElementById("viewer");
    var aidDialog = document.getElementById("aid-dialog");
    if (!viewer || !aidDialog) { return; }
    var strips = document.getElementById("aid-strips");
    var pixelated = viewer.hasAttribute("data-pixelated");
    var viewerImage = null;  // made at the first opening: an image without a source never loads
    var queue = Promise.resolve();
    function inOrder(kind, duration) { queue = queue.then(function () { return send(kind, duration); }); }
    var openAid = timedDialog(aidDialog, "close_aid", inOrder);
    function element(tag, className, text) {
      var node = document.createElement(tag);
      if (className) { node.className = className; }
      if (text) { node.textContent = text; }
      return node;
    }
    function showStrips(aids, from) {
      strips.textContent = "";
      aids.forEach(function (aid) {
        var section = element("section", "aid-strip");
        section.appendChild(element("h2", "", "This example of \u201c" + from + "\u201d, changed step by step to look like \u201c" + aid.to + "\u201d"));
        var frames = element("div", "aid-frames");
        aid.frames.forEach(function (src, k) {
          var figure = element("figure");
          var image = element("img", pixelated ? "pixelated" : "");
          image.src = src;
          image.alt = k === 0 ? "the example" : "step " + k + " towards " + aid.to;
          figure.appendChild(image);
          figure.appendChild(element("figcaption", "", k === 0 ? "start" : (k === aid.frames.length - 1 ? "as \u201c" + aid.to + "\u201d" : "")));
          frames.appendChild(figure);
        });
        section.appendChild(frames);
        strips.appendChild(section);
      });
    }
    document.addEventListener("click", function (event) {
      var large = event.target.closest("button[data-large]");
      if (large) {
        if (viewerImage === null) {
          viewerImage = element("img", pixelated ? "pixelated" : "");
          viewerImage.id = "viewer-image";
          viewerImage.alt = "the example, large";
          document.getElementById("viewer-box").appendChild(viewerImage);
        }
        viewerImage.src = large.getAttribute("data-large");
        viewer.showModal();
        return;
      }
      var aid = event.target.closest("button[data-aid]");
      if (!aid) { return; }
      showStrips(JSON.parse(aid.getAttribute("data-aid")), aid.getAttribute("data-from"));
      openAid("open_aid");
    });
  }

  // ---- leaving the tab (teaching, quiz, test) ----------------------------------------------------
  function watchTab() {
    var hiddenAt = null;
    window.addEventListener("beforeunload", function () { leaving = true; });
    window.addEventListener("pageshow", function () { leaving = false; });
    document.addEventListener("submit", function () { leaving = true; });
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") {
        if (leaving || hiddenAt !== null) { return; }
        hiddenAt = performance.now();
        postEvent("tab_hidden");
      } else if (hiddenAt !== null) {
        postEvent("tab_visible", performance.now() - hiddenAt);
        hiddenAt = null;
      }
    });
  }

  // ---- a trial page: the quiz and the test --------------------------------------------------------
  function trialPage() {
    var state = JSON.parse(document.getElementById("initial-state").textContent);
    var config = JSON.parse(document.getElementById("config").textContent);
    var image = document.getElementById("stimulus");
    var choices = Array.prototype.slice.call(document.querySelectorAll("button.choice"));
    var progress = document.getElementById("progress");
    var overall = document.getElementById("overall");
    var prompt = document.getElementById("prompt");
    var defaultPrompt = prompt.textContent;
    var feedback = document.getElementById("feedback");
    var errorBox = document.getElementById("error");
    var intro = document.getElementById("intro");
    var trialBox = document.getElementById("trial");
    var dialog = document.getElementById("teaching-dialog");
    var showButton = document.getElementById("show-teaching");
    var shownAt = null, busy = true, seenPhase = null, breakDoneAt = -1, introKind = null, introAt = 0;

    function setBusy(value) {
      busy = value;
      choices.forEach(function (button) { button.disabled = value; });
    }
    function showError(text) { errorBox.textContent = text; }

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
    function record(kind, duration) {  // retried like an answer: stored once however often it is sent
      return post("/api/event", eventBody(kind, duration)).catch(function () {});
    }
    async function fetchState() {
      var r = await send("/api/state", { method: "GET" });
      if (r.status !== 200) { throw new Error("state"); }
      return r.data;
    }

    function showIntro(kind) {
      introKind = kind;
      introAt = performance.now();
      ["quiz", "test", "break"].forEach(function (name) { document.getElementById("intro-" + name).hidden = name !== kind; });
      var count = document.getElementById("break-count");
      count.hidden = kind !== "break";
      count.textContent = "You have answered " + state.trial + " of the " + state.total + " test images.";
      progress.textContent = kind === "break" ? "Break" : (kind === "quiz" ? "Quiz" : "Test");
      trialBox.hidden = true;
      intro.hidden = false;
      document.getElementById("intro-continue").focus();
    }

    function show(next) {
      state = next;
      if (state.phase !== "quiz" && state.phase !== "test") { go(state.url); return; }
      if (state.phase !== config.phase) { go(state.url); return; }  // the next phase's page (teaching set or not)
      overall.max = state.steps;
      overall.value = state.step;
      if (seenPhase !== state.phase && state.trial === 0) {
        seenPhase = state.phase;
        showIntro(state.phase);
        return;
      }
      seenPhase = state.phase;
      if (state.phase === "test" && config.break_every > 0 && state.trial > 0 && state.trial % config.break_every === 0
          && breakDoneAt !== state.trial) {
        showIntro("break");
        return;
      }
      intro.hidden = true;
      trialBox.hidden = false;
      progress.textContent = (state.phase === "quiz" ? "Quiz " : "Test ") + (state.trial + 1) + " of " + state.total;
      prompt.textContent = state.instruction || defaultPrompt;
      prompt.classList.toggle("instruction", Boolean(state.instruction));
      feedback.textContent = "";
      feedback.className = "feedback";
      choices.forEach(function (button) { button.classList.remove("chosen", "right-answer", "wrong-answer"); });
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
    document.getElementById("intro-continue").addEventListener("click", function () {
      if (introKind === "break") {
        breakDoneAt = state.trial;
        record("break", performance.now() - introAt);
      }
      introKind = null;
      show(state);
    });

    function highlight(answer, right) {
      choices.forEach(function (button, index) {
        if (index === answer) { button.classList.add("chosen", index === right ? "right-answer" : "wrong-answer"); }
        else if (index === right) { button.classList.add("right-answer"); }
      });
    }

    async function choose(answer) {
      if (busy || shownAt === null) { return; }
      setBusy(true);
      var rt = Math.min(3600000, Math.round(performance.now() - shownAt));
      try {
        var r = await post("/api/answer", { phase: state.phase, trial: state.trial, stimulus: state.stimulus, answer: answer, rt_ms: rt });
        if (r.status === 200) {
          var fb = r.data.feedback;
          if (fb) {
            highlight(answer, fb.answer);
            feedback.textContent = fb.correct ? "Right!" : "Not quite: it was " + fb.label + ".";
            feedback.className = "feedback " + (fb.correct ? "right" : "wrong");
            await sleep(fb.correct ? 700 : 1600);
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
      if (document.querySelector("dialog[open]") || !intro.hidden) { return; }
      var n = parseInt(event.key, 10);
      if (choices.length <= 9 && n >= 1 && n <= choices.length) { choose(n - 1); }
    });

    if (showButton && dialog) {
      var openTeachingSet = timedDialog(dialog, "hide_teaching_set", record);
      showButton.addEventListener("click", function () { openTeachingSet("show_teaching_set"); });
    }
    teachingViews(record);
    show(state);
  }

  if (page === "consent") { consentPage(); }
  if (page === "teaching" || page === "trial" || page === "instructions") { watchTab(); }
  if (page === "teaching") { teachingViews(postEvent); }
  if (page === "trial") { trialPage(); }
})();
