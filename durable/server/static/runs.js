// The pages about many runs: the runs (searched and paged on the server), the queues,
// the schedules, and the form that starts a run.
"use strict";

const PAGE_SIZE = 50;
const STATUSES = ["queued", "pending", "running", "sleeping", "waiting", "completed", "failed", "cancelled"];

// -- the runs ----------------------------------------------------------------

function showRuns() {
  setTitle("runs");
  const status = el("select", { id: "status-filter", "aria-label": "status" }, el("option", { value: "" }, "any status"),
    ...STATUSES.map((s) => el("option", { value: s }, s)));
  const workflow = el("input", { id: "workflow-filter", placeholder: "workflow", "aria-label": "workflow" });
  const search = el("input", { id: "search", placeholder: "run id contains…", "aria-label": "run id contains" });
  const since = el("input", { id: "since", type: "datetime-local", "aria-label": "created from" });
  const until = el("input", { id: "until", type: "datetime-local", "aria-label": "created before" });
  const previous = el("button", { id: "prev", disabled: true }, "← Newer");
  const next = el("button", { id: "next", disabled: true }, "Older →");
  const info = el("span", { id: "page-info" });
  const problem = el("div", { class: "notice error", id: "problem", hidden: true });
  const body = el("tbody");
  const table = el("table", { id: "runs" },
    el("thead", {}, el("tr", {}, el("th", {}, "run"), el("th", {}, "workflow"),
      el("th", {}, "status"), el("th", {}, "created"), el("th", {}, "updated"))), body);
  view.replaceChildren(
    el("div", { class: "filters" }, status, workflow, search,
      el("label", {}, "from ", since), el("label", {}, "before ", until)),
    problem, table, el("div", { class: "pager" }, previous, info, next));

  // The cursors of the pages before this one: "Newer" pops, "Older" pushes.
  let cursors = [];
  let cursor = null;
  let nextCursor = null;

  function query() {
    const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (status.value) q.set("status", status.value);
    if (workflow.value.trim()) q.set("workflow", workflow.value.trim());
    if (search.value.trim()) q.set("q", search.value.trim());
    if (since.value) q.set("since", new Date(since.value).toISOString());
    if (until.value) q.set("until", new Date(until.value).toISOString());
    if (cursor) q.set("cursor", cursor);
    return q;
  }

  let asked = 0;  // only the answer to the latest request is shown
  let shown = "";  // the rows drawn: redrawn only when they change, never swapped out under a click
  async function load() {
    const mine = ++asked;
    let answer;
    try { answer = await api(`/api/runs?${query()}`, { withHeaders: true }); } catch (error) {
      if (mine === asked) notice(problem, error.message, true);
      return;
    }
    if (mine !== asked) return;
    notice(problem, "");
    const runs = answer.data;
    nextCursor = answer.headers.get("Next-Cursor");
    const first = cursors.length * PAGE_SIZE;
    info.textContent = runs.length ? `runs ${first + 1}–${first + runs.length}${nextCursor ? "" : " (the last)"}` : "no runs match";
    previous.disabled = !cursors.length;
    next.disabled = !nextCursor;
    // What the rows show, not the whole run: a lease renewed is no reason to redraw.
    const drawing = JSON.stringify(runs.map((r) => [r.run_id, r.workflow, r.status, r.created_at, r.updated_at]));
    if (drawing === shown) return;
    shown = drawing;
    body.replaceChildren(...runs.map((run) =>
      el("tr", { class: "run", "data-run": run.run_id, onclick: () => { location.hash = `#/runs/${encodeURIComponent(run.run_id)}`; } },
        el("td", {}, runLink(run.run_id)), el("td", {}, run.workflow), el("td", {}, badge(run.status)),
        el("td", {}, when(run.created_at)), el("td", {}, when(run.updated_at)))));
  }

  function fromTheStart() { cursors = []; cursor = null; nextCursor = null; load(); }
  let typing = null;
  const soon = () => { clearTimeout(typing); typing = setTimeout(fromTheStart, 250); };
  for (const input of [status, since, until]) input.onchange = fromTheStart;
  for (const input of [workflow, search]) input.oninput = soon;
  // Each button is off until its page has come: a second click never skips or repeats one.
  next.onclick = () => {
    if (!nextCursor) return;
    cursors.push(cursor);
    cursor = nextCursor;
    nextCursor = null;
    next.disabled = previous.disabled = true;
    load();
  };
  previous.onclick = () => {
    if (!cursors.length) return;
    cursor = cursors.pop();
    next.disabled = previous.disabled = true;
    load();
  };
  poll(load, 2000);
}

// -- queues and schedules -----------------------------------------------------

function showQueues() {
  setTitle("queues");
  const body = el("tbody");
  const problem = el("div", { class: "notice error", hidden: true });
  const limit = (value) => (value === null ? "—" : String(value));
  view.replaceChildren(problem, el("section", {}, el("h2", {}, "queues"),
    el("table", { id: "queues" }, el("thead", {}, el("tr", {}, ...["queue", "queued", "running", "concurrency", "per runtime", "rate"].map((h) => el("th", {}, h)))), body),
    el("p", { class: "hint" }, "queued: runs waiting for a slot; running: admitted runs that have not ended. Limits are those declared by the code this server loaded (— for none).")));
  poll(async () => {
    try {
      const queues = await api("/api/queues");
      notice(problem, "");
      body.replaceChildren(...queues.map((q) => el("tr", { "data-queue": q.name },
        el("td", {}, q.name), el("td", { class: "queued" }, q.queued), el("td", { class: "running" }, q.running),
        el("td", {}, limit(q.concurrency)), el("td", {}, limit(q.per_runtime)),
        el("td", {}, q.rate ? `${q.rate[0]} per ${q.rate[1]} s` : "—"))));
      if (!queues.length) body.replaceChildren(el("tr", {}, el("td", { colspan: 6 }, "no queues")));
    } catch (error) { notice(problem, error.message, true); }
  }, 2000);
}

function showSchedules() {
  setTitle("schedules");
  const body = el("tbody");
  const problem = el("div", { class: "notice error", hidden: true });
  view.replaceChildren(problem, el("section", {}, el("h2", {}, "schedules"),
    el("table", { id: "schedules" }, el("thead", {}, el("tr", {}, ...["workflow", "cron", "time zone", "next tick", "latest run"].map((h) => el("th", {}, h)))), body)));
  poll(async () => {
    try {
      const schedules = await api("/api/schedules");
      notice(problem, "");
      body.replaceChildren(...schedules.map((s) => el("tr", { "data-schedule": s.workflow },
        el("td", {}, s.workflow), el("td", {}, el("code", {}, s.cron)), el("td", {}, s.tz),
        el("td", { class: "next-tick", title: s.next_tick }, `${when(s.next_tick)} (in ${duration(ms(s.next_tick) - Date.now())})`),
        el("td", {}, s.last_run_id ? runLink(s.last_run_id) : "none yet"))));
      if (!schedules.length) body.replaceChildren(el("tr", {}, el("td", { colspan: 5 }, "no schedules")));
    } catch (error) { notice(problem, error.message, true); }
  }, 5000);
}

// -- starting a run -----------------------------------------------------------

async function showStart() {
  setTitle("start a run");
  const problem = el("div", { class: "notice error", id: "problem", hidden: true });
  const pick = el("select", { id: "start-workflow", "aria-label": "workflow" });
  const about = el("p", { class: "hint", id: "start-about" });
  const args = el("textarea", { id: "start-args", rows: 3, spellcheck: "false" }, "[]");
  const kwargs = el("textarea", { id: "start-kwargs", rows: 3, spellcheck: "false" }, "{}");
  const runId = el("input", { id: "start-run-id", placeholder: "optional: the run id (idempotency key)" });
  const usd = el("input", { id: "start-budget-usd", type: "number", min: "0", step: "any", placeholder: "usd" });
  const tokens = el("input", { id: "start-budget-tokens", type: "number", min: "0", step: "1", placeholder: "tokens" });
  const send = el("button", { type: "submit", id: "start-send" }, "Start run");
  const form = el("form", { id: "start-form" },
    el("label", {}, "workflow ", pick), about,
    el("label", {}, "positional arguments (a JSON list)", args),
    el("label", {}, "keyword arguments (a JSON object)", kwargs),
    el("label", {}, "run id ", runId),
    el("label", {}, "budget (optional; empty: the workflow's own, if any)", el("span", { class: "inline" }, usd, tokens)), send);
  view.replaceChildren(problem, el("section", {}, el("h2", {}, "start a run"), form));
  let workflows = [];
  try { workflows = await api("/api/workflows"); } catch (error) { notice(problem, error.message, true); return; }
  for (const wf of workflows) pick.append(el("option", { value: `${wf.name}@${wf.version}` }, `${wf.name} (version ${wf.version})`));
  const describe = () => {
    const wf = workflows.find((w) => `${w.name}@${w.version}` === pick.value);
    const budget = wf && wf.budget ? ` · budget ${capsText(wf.budget)}` : "";
    about.textContent = wf ? `parameters: ${wf.parameters.join(", ") || "none"}${wf.queue ? ` · queue ${wf.queue}` : ""}${budget}${wf.doc ? ` · ${wf.doc}` : ""}` : "";
  };
  pick.onchange = describe;
  describe();
  form.onsubmit = async (submitted) => {
    submitted.preventDefault();
    let body;
    try { body = { args: JSON.parse(args.value || "[]"), kwargs: JSON.parse(kwargs.value || "{}") }; } catch (error) {
      notice(problem, `the arguments are not JSON: ${error.message}`, true);
      return;
    }
    if (usd.value.trim() || tokens.value.trim()) {
      body.budget = { usd: usd.value.trim() ? Number(usd.value) : null, tokens: tokens.value.trim() ? Number(tokens.value) : null };
    }
    const headers = runId.value.trim() ? { "Idempotency-Key": runId.value.trim() } : {};
    try {
      const started = await api(`/api/workflows/${encodeURIComponent(pick.value)}/runs`, { method: "POST", body: JSON.stringify(body), headers });
      sessionStorage.setItem("durable-notice", `Started run ${started.run_id} of ${pick.value}.`);
      location.hash = `#/runs/${encodeURIComponent(started.run_id)}`;
    } catch (error) { notice(problem, `start: ${error.message}`, true); }
  };
}
