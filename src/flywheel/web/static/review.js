// The review page's keys: each verdict button carries its key in data-key (p / f, or a / b / t), plus s (skip)
// and u (undo the last label). Keys typed into the reason and correction fields are text, not verdicts.
(function () {
  "use strict";
  document.addEventListener("keydown", function (e) {
    var tag = (e.target && e.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || e.ctrlKey || e.metaKey || e.altKey) {
      if (e.key === "Escape" && e.target.blur) { e.target.blur(); }
      return;
    }
    if (document.querySelector("#item .htmx-request, #item.htmx-request")) { return; }  // one label at a time
    var button = document.querySelector('#item button[data-key="' + e.key.toLowerCase() + '"]');
    if (button) { e.preventDefault(); button.click(); }
  });
})();
