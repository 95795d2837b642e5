// The review page's keys: each verdict button carries its key in data-key (p / f, or a / b / t), plus s (skip)
// and u (undo the last label); r goes to the reason field. Keys typed into the reason and correction fields are
// text, not verdicts.
// One request at a time: a key pressed while the next item loads is kept and applied to that item.
(function () {
  "use strict";
  var busy = false, pending = null;
  function press(key) {
    var button = document.querySelector('#item button[data-key="' + key + '"]');
    if (button) { busy = true; button.click(); return true; }
    return false;
  }
  document.addEventListener("htmx:afterSettle", function () {
    busy = false;
    if (pending) { var key = pending; pending = null; press(key); }
  });
  document.addEventListener("htmx:afterRequest", function (e) {
    if (!e.detail.successful) { busy = false; pending = null; }
  });
  document.addEventListener("keydown", function (e) {
    var tag = (e.target && e.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || e.ctrlKey || e.metaKey || e.altKey) {
      if (e.key === "Escape" && e.target.blur) { e.target.blur(); }
      return;
    }
    var key = e.key.toLowerCase();
    var reason = document.querySelector("#item #reason");
    if (key === "r" && reason) { reason.focus(); e.preventDefault(); return; }  // the reason without 19 Tabs
    if (!document.querySelector('#item button[data-key="' + key + '"]')) { return; }
    e.preventDefault();
    if (busy) { pending = key; } else { press(key); }
  });
})();
