/* benchrun view: the pairwise voting page (A / B / tie) of a pairwise run. Text goes in via textContent
   only, never innerHTML. */
(function () {
  "use strict";
  var pair = document.getElementById("pair");
  if (!pair) { return; }
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var status = document.getElementById("status");
  var nextBtn = document.getElementById("next");
  var saved = false, busy = false;

  function next() { window.location.reload(); }

  function vote(winner) {
    if (saved || busy || pair.dataset.readOnly) { return; }
    busy = true;
    status.textContent = "saving…";
    fetch("/runs/" + encodeURIComponent(pair.dataset.run) + "/label", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ item_id: pair.dataset.item, annotator: pair.dataset.annotator, winner: winner })
    }).then(function (r) {
      return r.json().then(function (data) { return { ok: r.ok, data: data }; });
    }).then(function (res) {
      busy = false;
      if (!res.ok) { status.textContent = "not saved: " + res.data.error; return; }
      saved = true;
      status.textContent = "saved " + winner + " (report " + res.data.saved.report_id + ")";
      document.getElementById("reveal-a").textContent = res.data.reveal.A;
      document.getElementById("reveal-b").textContent = res.data.reveal.B;
      document.getElementById("reveal").hidden = false;
      nextBtn.hidden = false;
      document.documentElement.setAttribute("data-saved", pair.dataset.item);
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("button.vote"), function (b) {
    b.addEventListener("click", function () { vote(b.dataset.winner); });
  });
  nextBtn.addEventListener("click", next);
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    var k = ev.key;
    if (k === "a") { vote("A"); }
    else if (k === "b") { vote("B"); }
    else if (k === "t") { vote("tie"); }
    else if (k === "Enter" && saved) { next(); }
    else { return; }
    ev.preventDefault();
  });
  document.documentElement.setAttribute("data-ready", "yes");
}());
