// The web view of durable serve: the router. The pages are in runs.js (runs, queues,
// schedules, starting a run), run.js and timeline.js (one run); shared parts in common.js.
"use strict";

const ROUTES = [
  [/^#\/runs\/(.+)$/, (match) => showRun(decodedId(match[1]))],
  [/^#\/queues$/, () => showQueues()],
  [/^#\/schedules$/, () => showSchedules()],
  [/^#\/start$/, () => showStart()],
];

// A run id from the address; a malformed escape is taken as typed (no such run, most likely).
function decodedId(text) {
  try { return decodeURIComponent(text); } catch { return text; }
}

function route() {
  stopPage();
  for (const link of document.querySelectorAll("nav a"))
    link.classList.toggle("here", link.getAttribute("href") === (location.hash || "#/"));
  for (const [pattern, show] of ROUTES) {
    const match = location.hash.match(pattern);
    if (match) return show(match);
  }
  return showRuns();
}
window.addEventListener("hashchange", route);

route();
