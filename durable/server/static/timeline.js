// A run's timeline: one lane per durable call on one time axis from the run's start.
// Steps show each attempt (failed and interrupted ones red, the wait before a retry
// hatched), sleeps run to their wake time, waits and children to their end. A budget
// question shares the lane of the call it held back: drawn as a hold before it.
"use strict";

const MAX_LANES = 300;
const HIDDEN_FAMILIES = new Set(["stream", "state"]);  // shown in their own panels

function drawTimeline(run, history, byStep = {}) {
  const events = history.filter((event) => event.position !== null && !event.superseded
    && !HIDDEN_FAMILIES.has(event.kind.split(".")[0]));
  const start = ms(run.created_at);
  const ended = ENDED.includes(run.status);
  const now = Date.now();
  const end = Math.max(ended ? ms(run.updated_at) : now, ...history.map((event) => ms(event.created_at)), start + 1);
  const axis = { start, end, now: ended ? end : now, width: end - start };
  const lanes = new Map();
  for (const event of events) {
    if (!lanes.has(event.position)) lanes.set(event.position, []);
    lanes.get(event.position).push(event);
  }
  const positions = [...lanes.keys()].sort((a, b) => a - b);
  const rows = positions.slice(0, MAX_LANES).map((position) => lane(position, lanes.get(position), axis, byStep[position]));
  const box = el("div", { class: "timeline" }, scale(axis), ...rows);
  if (!rows.length) box.append(el("p", { class: "hint" }, "no durable calls yet"));
  if (positions.length > MAX_LANES) box.append(el("p", { class: "hint" }, `${positions.length - MAX_LANES} later calls not drawn`));
  return box;
}

// Five ticks under the lanes' track: +0, then the time since the run's start.
function scale(axis) {
  const ticks = el("div", { class: "track ticks" });
  for (let i = 0; i <= 4; i += 1) {
    const label = i === 0 ? "start" : `+${duration((axis.width * i) / 4)}`;
    ticks.append(el("span", { class: "tick", style: `left:${i * 25}%` }, label));
  }
  return el("div", { class: "lane axis" }, el("div", { class: "label" }, when(new Date(axis.start).toISOString())), ticks);
}

function lane(position, events, axis, spent) {
  const gate = events.filter(isGate);
  const group = events.filter((event) => !isGate(event));
  const track = el("div", { class: "track" });
  const at = (event) => ms(event.created_at);
  const place = (from, to, cls, title) => {
    const left = Math.max(0, ((from - axis.start) / axis.width) * 100);
    const span = Math.max(Math.min(((to - from) / axis.width) * 100, 100 - left), 0.3);
    track.append(el("div", { class: `bar ${cls}`, style: `left:${left}%;width:${span}%`, title }));
  };
  const held = gate.length ? heldBar(gate, axis, at, place, group.length > 0) : null;
  if (!group.length) {  // held back and not started (yet, or stopped)
    const text = `#${position} budget question · ${held}`;
    return el("div", { class: "lane", "data-position": position, "data-family": "budget" }, el("div", { class: "label", title: text }, text), track);
  }
  const first = group[0];
  const family = first.kind.split(".")[0];
  let label = `#${position} ${family} ${first.name}`;
  let took = null;
  if (family === "step") {
    took = stepBars(group, axis, at, place);
    const attempts = group.filter((event) => event.kind === "step.started").length;
    if (attempts > 1) label += ` (${attempts} attempts)`;
  } else if (family === "sleep") {
    const wake = (first.payload && first.payload.wake_at) * 1000;
    const woke = wake <= axis.now;
    place(at(first), woke ? wake : axis.end, woke ? "span" : "span running", `sleep until ${atTime(wake)}`);
    if (!woke) track.append(el("span", { class: "note wake" }, `wakes ${atTime(wake)} (in ${duration(wake - axis.now)})`));
    took = (woke ? wake : axis.now) - at(first);
  } else if (family === "wait" || family === "child") {
    const done = group.find((event) => event.kind.endsWith(".completed"));
    const stop = done ? at(done) : axis.end;
    place(at(first), stop, `${family === "child" ? "child" : "span"}${done ? "" : " running"}`, `${first.kind}${done ? "" : " (open)"}`);
    took = (done ? at(done) : axis.now) - at(first);
    if (family === "child" && first.payload && first.payload.run_id) label += ` → ${first.payload.run_id}`;
  } else {
    place(at(first), at(first), "instant", first.kind);
  }
  if (held) label += ` (${held})`;
  if (spent) label += ` · ${stepSpend(spent)}`;
  const text = took === null ? label : `${label} · ${duration(took)}`;
  const labelBox = el("div", { class: "label", title: text }, text);
  if (family === "child" && first.payload && first.payload.run_id) {
    labelBox.replaceChildren(`#${position} child `, runLink(first.payload.run_id), held ? ` (${held})` : "", took === null ? "" : ` · ${duration(took)}`);
  }
  return el("div", { class: "lane", "data-position": position, "data-family": family, "data-held": gate.length > 0 }, labelBox, track);
}

// A budget question's hold as a bar; says how it ended: raised (the call went on),
// stopped, or still waiting.
function heldBar(gate, axis, at, place, went) {
  const done = gate.find((event) => event.kind === "wait.completed");
  const stopped = done && done.payload && done.payload.value === "stop";
  const outcome = !done ? "waiting for a raise or stop" : stopped ? "stopped: not started" : "held, then raised";
  place(at(gate[0]), done ? at(done) : axis.end, `held${done ? "" : " running"}`, `budget question: ${outcome}`);
  const took = duration((done ? at(done) : axis.now) - at(gate[0]));
  return went ? `held ${took} by its budget` : `${outcome} · ${took}`;
}

// Each attempt of a step as a bar; returns the step's whole duration so far.
function stepBars(group, axis, at, place) {
  let attempt = null;
  let retryFrom = null;
  for (const event of group) {
    if (event.kind === "step.started") {
      if (attempt) place(at(attempt), at(event), "failed interrupted", "interrupted: started again");
      if (retryFrom !== null) place(retryFrom, at(event), "retry-wait", "waiting to retry");
      attempt = event;
      retryFrom = null;
    } else if (attempt) {
      const failed = event.kind === "step.failed";
      const number = attempt.payload && attempt.payload.attempt;
      place(at(attempt), at(event), failed ? "failed" : "", `attempt ${number}: ${failed ? "failed" : "completed"} after ${duration(at(event) - at(attempt))}`);
      if (failed && event.payload && event.payload.retry_at) retryFrom = at(event);
      attempt = null;
    }
  }
  if (attempt) place(at(attempt), axis.end, "running", "running");
  const last = group[group.length - 1];
  const finished = last.kind === "step.completed" || (last.kind === "step.failed" && last.payload && last.payload.final);
  return (finished ? at(last) : axis.now) - at(group[0]);
}
