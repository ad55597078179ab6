// Results: a quoted turn's link opens the transcript it sits in, scrolls to the turn and focuses it.
(function () {
  "use strict";
  function reveal() {
    const id = decodeURIComponent(window.location.hash.slice(1));
    const turn = id && document.getElementById(id);
    if (!turn) return;
    const details = turn.closest("details");
    if (details) details.open = true;
    turn.scrollIntoView({ block: "center" });
    turn.focus({ preventScroll: true });
  }
  window.addEventListener("hashchange", reveal);
  reveal();
})();
