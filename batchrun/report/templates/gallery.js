(function () {
  "use strict";
  var bar = document.getElementById("filters");
  var shown = document.getElementById("shown");
  bar.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-filter]");
    if (!button) return;
    document.body.setAttribute("data-filter", button.getAttribute("data-filter"));
    bar.querySelectorAll("button").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b === button));
    });
    shown.textContent = Number(button.getAttribute("data-count")).toLocaleString("en-US");
  });
  // Videos load nothing until they come near the screen, then only enough for a first frame.
  if ("IntersectionObserver" in window) {
    var watcher = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting) {
          entry.target.preload = "metadata";
          watcher.unobserve(entry.target);
        }
      });
    }, { rootMargin: "300px" });
    document.querySelectorAll("video").forEach(function (v) { watcher.observe(v); });
  }
})();
