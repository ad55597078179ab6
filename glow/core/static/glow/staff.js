// Glow staff pages: small progressive enhancements (the pages work without this file; CSP allows
// only same-origin script, so nothing is inline).
(function () {
  "use strict";

  // Print buttons: the report pages print as they are (a print stylesheet hides the chrome).
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });

  // A running test's grid: every event on the test's group channel (a cell's run ending, the
  // test's progress) re-reads the page at most once a second and swaps the grid in place; the
  // stream closes once the page says the test no longer runs.
  const box = document.getElementById("live-grid");
  if (!box || box.dataset.live !== "1" || !box.dataset.watch || !window.EventSource) return;
  const note = document.getElementById("live-note");
  const source = new EventSource(box.dataset.watch);
  let waiting = false;
  function refresh() {
    if (waiting) return;
    waiting = true;
    setTimeout(async function () {
      try {
        const response = await fetch(window.location.href, { credentials: "same-origin" });
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.getElementById("live-grid");
        if (fresh) {
          box.innerHTML = fresh.innerHTML;
          box.dataset.live = fresh.dataset.live;
          if (fresh.dataset.live !== "1") {
            source.close();
            if (note) note.textContent = "Finished: no cell is left running.";
          }
        }
      } finally {
        waiting = false;
      }
    }, 1000);
  }
  ["TestProgressEvent", "GenerationCompleteEvent", "GenerationErrorEvent", "message"].forEach(
    function (name) { source.addEventListener(name, refresh); }
  );
})();
