// The web view of durable serve: the runs, and a run's page, from the JSON API.
// Everything a run stores is put on the page as text (textContent), never as HTML.
"use strict";

const params = new URLSearchParams(location.search);
if (params.get("token")) sessionStorage.setItem("durable-token", params.get("token"));
let token = sessionStorage.getItem("durable-token");

// A server started with --token answers the page but not the API without it: on a
// 401 the page stops polling and asks for the token, kept for this tab only.
function askForToken(refused) {
  clearInterval(timer);
  if (document.getElementById("token-form")) return;
  const input = el("input", { id: "token-input", type: "password", placeholder: "token", autocomplete: "off" });
  const form = el("form", { id: "token-form" },
    el("h2", {}, "This server needs its API token"),
    el("p", {}, refused ? "The token given was refused; try again." : "Enter the token durable serve was started with (--token or DURABLE_TOKEN)."),
    input, el("button", { type: "submit", id: "token-send" }, "Use token"));
  form.onsubmit = (submitted) => {
    submitted.preventDefault();
    token = input.value.trim();
    sessionStorage.setItem("durable-token", token);
    route();
  };
  view.replaceChildren(form);
  input.focus();
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.method === "POST") {
    headers["Content-Type"] = "application/json";  // the server takes JSON only
    options = { body: "{}", ...options };
  }
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    askForToken(Boolean(token));
    throw new Error("UNAUTHORIZED: this server needs its API token");
  }
  const data = await response.json();
  if (!response.ok) throw new Error(`${data.code}: ${data.message}`);
  return data;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "onclick" || key === "onchange" || key === "oninput") node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

const json = (value) => JSON.stringify(value, null, 2);
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
const badge = (status) => el("span", { class: `status ${status}`, "data-status": status }, status);
const view = document.getElementById("view");
let timer = null;
let streams = [];

function route() {
  clearInterval(timer);
  streams.forEach((source) => source.close());
  streams = [];
  const match = location.hash.match(/^#\/runs\/(.+)$/);
  if (match) showRun(decodeURIComponent(match[1]));
  else showRuns();
}
window.addEventListener("hashchange", route);

// -- the runs ----------------------------------------------------------------

function showRuns() {
  document.getElementById("where").textContent = "runs";
  const status = el("select", { id: "status-filter" }, el("option", { value: "" }, "any status"));
  for (const s of ["queued", "pending", "running", "sleeping", "waiting", "completed", "failed", "cancelled"])
    status.append(el("option", { value: s }, s));
  const workflow = el("input", { id: "workflow-filter", placeholder: "workflow" });
  const search = el("input", { id: "search", placeholder: "run id" });
  const body = el("tbody");
  const table = el("table", { id: "runs" },
    el("thead", {}, el("tr", {}, el("th", {}, "run"), el("th", {}, "workflow"),
      el("th", {}, "status"), el("th", {}, "created"), el("th", {}, "updated"))), body);
  view.replaceChildren(el("div", { class: "filters" }, status, workflow, search), table);
  async function load() {
    const query = new URLSearchParams({ limit: "200" });
    if (status.value) query.set("status", status.value);
    if (workflow.value) query.set("workflow", workflow.value);
    const runs = await api(`/api/runs?${query}`);
    const wanted = search.value.trim();
    body.replaceChildren(...runs.filter((run) => !wanted || run.run_id.includes(wanted)).map((run) =>
      el("tr", { class: "run", "data-run": run.run_id, onclick: () => { location.hash = `#/runs/${encodeURIComponent(run.run_id)}`; } },
        el("td", {}, run.run_id), el("td", {}, run.workflow), el("td", {}, badge(run.status)),
        el("td", {}, when(run.created_at)), el("td", {}, when(run.updated_at)))));
  }
  for (const input of [status, workflow, search]) input.oninput = input.onchange = load;
  load();
  timer = setInterval(load, 1000);
}

// -- one run ---------------------------------------------------------------------

function showRun(runId) {
  document.getElementById("where").textContent = runId;
  const header = el("section", { id: "header" });
  const question = el("section", { id: "question" });
  const values = el("section", { id: "values" });
  const timeline = el("section", { id: "timeline" });
  const live = el("section", { id: "streams" }, el("h2", {}, "streams"));
  const actions = el("section", { class: "actions" });
  const problem = el("div", { class: "error", id: "problem" });
  view.replaceChildren(problem, header, question, actions, values, timeline, live);
  const seenStreams = new Set();
  let answered = null;

  async function act(label, call) {
    try { await call(); problem.textContent = ""; } catch (error) { problem.textContent = `${label}: ${error.message}`; }
    load();
  }

  async function load() {
    try {
      const [run, history, state, waits, children] = await Promise.all([
        api(`/api/runs/${encodeURIComponent(runId)}`),
        api(`/api/runs/${encodeURIComponent(runId)}/history`),
        api(`/api/runs/${encodeURIComponent(runId)}/state`),
        api(`/api/runs/${encodeURIComponent(runId)}/waits`),
        api(`/api/runs?parent=${encodeURIComponent(runId)}&limit=200`),
      ]);
      renderHeader(run, children);
      renderQuestion(waits);
      renderValues(run, state);
      renderTimeline(run, history);
      renderActions(run, history);
      for (const event of history)
        if (event.kind === "stream.value" && !seenStreams.has(event.name)) follow(event.name);
    } catch (error) { problem.textContent = error.message; }
  }

  function link(id) { return el("a", { href: `#/runs/${encodeURIComponent(id)}` }, id); }

  function renderHeader(run, children) {
    const parts = [el("h2", {}, run.run_id, " ", badge(run.status)),
      el("div", {}, `workflow ${run.workflow} (version ${run.version})`),
      el("div", {}, `created ${when(run.created_at)} · updated ${when(run.updated_at)}`)];
    if (run.parent_run_id) parts.push(el("div", {}, "parent ", link(run.parent_run_id)));
    if (children.length) {
      const list = el("div", { id: "children" }, "children ");
      children.forEach((child) => list.append(link(child.run_id), " ", badge(child.status), " "));
      parts.push(list);
    }
    header.replaceChildren(...parts);
  }

  function renderQuestion(waits) {
    if (!waits.length) { question.replaceChildren(); question.hidden = true; return; }
    const wait = waits[0];
    if (answered === wait.wait_id) return;
    question.hidden = false;
    const answer = (value) => act("answer", async () => {
      answered = wait.wait_id;
      await api(`/api/runs/${encodeURIComponent(runId)}/respond`, { method: "POST", body: JSON.stringify({ value, wait_id: wait.wait_id }) });
    });
    const controls = el("div", {});
    if (wait.options && wait.options.length) {
      for (const option of wait.options) controls.append(el("button", { "data-option": option.id, onclick: () => answer(option.id) }, option.label));
    } else {
      const box = el("input", { id: "answer-text", placeholder: "your answer" });
      controls.append(box, el("button", { id: "answer-send", onclick: () => answer(box.value) }, "Send"));
    }
    question.replaceChildren(el("h2", {}, "question"), el("p", { id: "question-text" }, wait.question), controls);
  }

  function renderValues(run, state) {
    const parts = [el("h2", {}, "input"), el("pre", { id: "input" }, json(run.input))];
    if (run.output !== null) parts.push(el("h2", {}, "output"), el("pre", { id: "output" }, json(run.output)));
    if (run.error) parts.push(el("h2", {}, "error"), el("pre", { id: "error", class: "error" }, json(run.error)));
    parts.push(el("h2", {}, "state"), el("pre", { id: "state" }, json(state)));
    values.replaceChildren(...parts);
  }

  function renderTimeline(run, history) {
    // One lane per durable call: each step attempt a bar (failed ones red), sleeps and
    // waits spans, children their own colour; on one time axis from the run's start.
    const events = history.filter((event) => event.position !== null && !event.superseded);
    const start = new Date(run.created_at).getTime();
    const last = Math.max(Date.now(), ...history.map((event) => new Date(event.created_at).getTime()));
    const end = ["completed", "failed", "cancelled"].includes(run.status) ? new Date(run.updated_at).getTime() : last;
    const width = Math.max(end - start, 1);
    const lanes = new Map();
    for (const event of events) {
      if (!lanes.has(event.position)) lanes.set(event.position, []);
      lanes.get(event.position).push(event);
    }
    const rows = [];
    for (const [position, group] of [...lanes.entries()].sort((a, b) => a[0] - b[0])) {
      const first = group[0];
      const kind = first.kind.split(".")[0];
      const track = el("div", { class: "track" });
      const place = (from, to, cls, title) => {
        const left = ((from - start) / width) * 100;
        const span = Math.max(((to - from) / width) * 100, 0.3);
        track.append(el("div", { class: `bar ${cls}`, style: `left:${left}%;width:${span}%`, title }));
      };
      const at = (event) => new Date(event.created_at).getTime();
      if (kind === "step") {
        let attempt = null;
        for (const event of group) {
          if (event.kind === "step.started") { if (attempt) place(at(attempt), at(event), "failed", "interrupted"); attempt = event; }
          else if (attempt) { place(at(attempt), at(event), event.kind === "step.failed" ? "failed" : "", `${event.kind} after ${((at(event) - at(attempt)) / 1000).toFixed(3)}s`); attempt = null; }
        }
        if (attempt) place(at(attempt), end, "running", "running");
      } else if (kind === "sleep" || kind === "wait" || kind === "child") {
        const done = group.find((event) => event.kind.endsWith(".completed"));
        place(at(first), done ? at(done) : end, kind === "child" ? "child" : "span", first.kind);
      } else {
        place(at(first), at(first), "", first.kind);
      }
      const attempts = group.filter((event) => event.kind === "step.started").length;
      const label = `#${position} ${kind} ${first.name}${attempts > 1 ? ` (${attempts} attempts)` : ""}`;
      rows.push(el("div", { class: "lane", "data-position": position }, el("div", { class: "label", title: label }, label), track));
    }
    timeline.replaceChildren(el("h2", {}, "timeline"), el("div", { class: "timeline" }, ...rows));
  }

  function renderActions(run, history) {
    const buttons = [];
    if (!["completed", "failed", "cancelled"].includes(run.status))
      buttons.push(el("button", { id: "cancel", onclick: () => act("cancel", () => api(`/api/runs/${encodeURIComponent(runId)}/cancel`, { method: "POST" })) }, "Cancel"));
    if (run.status === "failed")
      buttons.push(el("button", { id: "resume", onclick: () => act("resume", () => api(`/api/runs/${encodeURIComponent(runId)}/resume`, { method: "POST" })) }, "Resume"));
    if (["completed", "failed"].includes(run.status)) {
      const steps = [...new Set(history.filter((event) => event.kind === "step.started" && !event.superseded).map((event) => event.position))];
      const pick = el("select", { id: "rerun-position" }, ...steps.map((position) => el("option", { value: position }, `#${position}`)));
      if (steps.length)
        buttons.push(pick, el("button", { id: "rerun", onclick: () => act("re-run", () => api(`/api/runs/${encodeURIComponent(runId)}/rerun`, { method: "POST", body: JSON.stringify({ position: Number(pick.value) }) })) }, "Re-run from step"));
    }
    actions.replaceChildren(...buttons);
    actions.hidden = !buttons.length;
  }

  // One panel per stream: its values folded into one text (tokens read as the text
  // they make); a step attempt's values sit in a span of their own, struck out
  // (<del>) when the attempt is retracted. EventSource resumes by itself after a
  // dropped connection (Last-Event-ID: the last item's cursor).
  function follow(key) {
    seenStreams.add(key);
    const out = el("pre", { "data-stream": key });
    live.append(el("h2", {}, key), out);
    const query = token ? `?token=${encodeURIComponent(token)}` : "";
    const source = new EventSource(`/api/runs/${encodeURIComponent(runId)}/streams/${encodeURIComponent(key)}${query}`);
    const attempts = new Map();
    const holder = (item) => {
      if (item.position === null) return out;
      const id = `${item.position}/${item.attempt}`;
      if (!attempts.has(id)) attempts.set(id, out.appendChild(el("span", { "data-attempt": id })));
      return attempts.get(id);
    };
    source.addEventListener("value", (message) => {
      const item = JSON.parse(message.data);
      holder(item).append(typeof item.value === "string" ? item.value : `${JSON.stringify(item.value)}\n`);
    });
    source.addEventListener("retract", (message) => {
      const item = JSON.parse(message.data);
      const span = attempts.get(`${item.position}/${item.attempt}`);
      if (!span) return;
      const struck = el("del", { class: "retracted", "data-attempt": span.dataset.attempt,
        title: `attempt ${item.attempt} of step #${item.position} did not complete: its values are void` });
      struck.append(...span.childNodes);
      span.replaceWith(struck);
    });
    source.addEventListener("end", () => source.close());
    streams.push(source);
  }

  load();
  timer = setInterval(load, 500);
}

route();
