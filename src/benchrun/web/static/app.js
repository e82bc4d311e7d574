/* benchrun view: the labelling page's keyboard and save/reveal. No dependencies; text goes in via
   textContent only (never innerHTML), so nothing a model or user wrote is parsed as markup. */
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().then(function (data) { return { ok: r.ok, data: data }; });
    });
  }

  var cal = document.getElementById("calibrate");
  if (cal) {
    cal.addEventListener("click", function () {
      var out = document.getElementById("calibrate-result");
      out.textContent = "calibrating…";
      post("/runs/" + encodeURIComponent(cal.dataset.run) + "/calibrate", {}).then(function (res) {
        out.textContent = res.ok ? (res.data.trusted ? "trusted: " : "NOT trusted: ") + res.data.summary
                                 : "error: " + res.data.error;
      });
    });
  }

  var item = document.getElementById("item");
  var form = document.getElementById("label-form");
  if (!item || !form) { document.documentElement.setAttribute("data-ready", "yes"); return; }
  var saved = false;
  var status = document.getElementById("status");
  var modes = document.getElementById("failure-mode");
  var note = document.getElementById("note");
  var nextBtn = document.getElementById("next");

  function pick(name, value) {
    var el = form.querySelector('input[name="' + name + '"][value="' + value + '"]');
    if (el) { el.checked = true; }
  }
  function value(name) {
    var el = form.querySelector('input[name="' + name + '"]:checked');
    return el ? el.value : null;
  }
  function next() { window.location.reload(); }
  var peeked = false;

  function show(rv) {
    document.getElementById("reveal-model").textContent = rv.model_key;
    document.getElementById("reveal-judge").textContent = rv.judge_score === null ? "no verdict" :
      "score " + rv.judge_score + ", " + (rv.judge_pass ? "pass" : "fail") + ", mode " + (rv.judge_failure_mode || "none");
    document.getElementById("reveal-reason").textContent = rv.judge_reason || "";
    document.getElementById("reveal").hidden = false;
  }

  function peek() {  // the annotator chose to see model and verdict before answering: the note says so
    if (saved || peeked) { return; }
    fetch("/runs/" + encodeURIComponent(item.dataset.run) + "/label/reveal/" + encodeURIComponent(item.dataset.item),
          { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (rv) {
      peeked = true;
      show(rv);
      status.textContent = "shown before answering: your note will say so";
    });
  }

  function save() {
    if (saved) { next(); return; }
    var score = value("score"), pass = value("pass");
    if (!score || !pass) { status.textContent = "give a score (1-5) and pass or fail (p / f) first"; return; }
    status.textContent = "saving…";
    post("/runs/" + encodeURIComponent(item.dataset.run) + "/label", {
      item_id: item.dataset.item, annotator: item.dataset.annotator, human_score: parseInt(score, 10),
      human_pass: pass === "pass", failure_mode: modes.value || null,
      note: (peeked ? "[saw model and judge verdict before answering] " : "") + note.value || null
    }).then(function (res) {
      if (!res.ok) { status.textContent = "not saved: " + res.data.error; return; }
      saved = true;
      status.textContent = "saved (report " + res.data.saved.report_id + ")";
      show(res.data.reveal);
      document.getElementById("save").hidden = true;
      nextBtn.hidden = false;
      document.documentElement.setAttribute("data-saved", item.dataset.item);
    });
  }

  form.addEventListener("submit", function (ev) { ev.preventDefault(); save(); });
  nextBtn.addEventListener("click", next);
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    var typing = ev.target === note;
    if (typing) {
      if (ev.key === "Escape") { note.blur(); ev.preventDefault(); }
      else if (ev.key === "Enter") { ev.preventDefault(); save(); }
      return;
    }
    if (ev.target === modes && ev.key !== "Enter" && ev.key !== "Escape") { return; }
    var k = ev.key;
    if (k >= "1" && k <= "5") { pick("score", k); }
    else if (k === "p") { pick("pass", "pass"); }
    else if (k === "f") { pick("pass", "fail"); }
    else if (k === "m") { modes.selectedIndex = (modes.selectedIndex + 1) % modes.options.length; }
    else if (k === "n") { note.focus(); }
    else if (k === "r") { peek(); }
    else if (k === "Enter") { save(); }
    else if (k === "Escape") { document.activeElement.blur(); }
    else { return; }
    ev.preventDefault();
  });
  document.documentElement.setAttribute("data-ready", "yes");
}());
