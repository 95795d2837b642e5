// Keyboard: J / K move through the rows of a list, Enter (or O) opens the selected one, / focuses the search.
// HTMX requests carry the page's CSRF token.
(function () {
  "use strict";
  document.addEventListener("htmx:configRequest", function (e) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) { e.detail.headers["X-CSRF-Token"] = meta.content; }
  });
  var current = -1;
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("tr.row[data-href]")); }
  function select(i) {
    var all = rows();
    if (!all.length) { return; }
    current = Math.max(0, Math.min(i, all.length - 1));
    all.forEach(function (r, j) { r.classList.toggle("selected", j === current); });
    all[current].scrollIntoView({block: "nearest"});
  }
  document.addEventListener("keydown", function (e) {
    var tag = (e.target && e.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || e.ctrlKey || e.metaKey || e.altKey) { return; }
    if (e.key === "j") { select(current + 1); e.preventDefault(); }
    else if (e.key === "k") { select(current - 1); e.preventDefault(); }
    else if ((e.key === "Enter" || e.key === "o") && current >= 0) {
      var r = rows()[current];
      if (r) { window.location.href = r.getAttribute("data-href"); }
    } else if (e.key === "/") {
      var s = document.querySelector('input[name="search"]');
      if (s) { s.focus(); e.preventDefault(); }
    }
  });
  // a control that applies its form at once (the CSP allows no inline onchange= handlers)
  document.addEventListener("change", function (e) {
    if (e.target.hasAttribute && e.target.hasAttribute("data-autosubmit") && e.target.form) { e.target.form.submit(); }
  });
  document.addEventListener("click", function (e) {
    var row = e.target.closest && e.target.closest("tr.span");
    if (!row) { return; }
    document.querySelectorAll("tr.span.selected").forEach(function (r) { r.classList.remove("selected"); });
    row.classList.add("selected");
  });
})();
