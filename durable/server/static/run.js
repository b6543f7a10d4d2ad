// A run's page: what it is, its question, the actions that can work on it, its values,
// its timeline on a time axis, each step with its input, result and attempts, its streams.
"use strict";

const MAX_STEPS = 500;  // drawn in the steps panel; the API has them all

function showRun(runId) {
  setTitle(runId);
  const said = el("div", { class: "notice", id: "notice", hidden: true });
  const problem = el("div", { class: "notice error", id: "problem", hidden: true });
  const header = el("section", { id: "header" });
  const question = el("section", { id: "question", hidden: true });
  const actions = el("section", { class: "actions", id: "actions", hidden: true });
  const budget = el("section", { id: "budget", hidden: true });
  const values = el("section", { id: "values" });
  const timeline = el("section", { id: "timeline" });
  const steps = el("section", { id: "steps", hidden: true });
  const live = el("section", { id: "streams", hidden: true }, el("h2", {}, "streams"));
  view.replaceChildren(said, problem, header, question, actions, budget, values, timeline, steps, live);
  const kept = sessionStorage.getItem("durable-notice");
  if (kept) { notice(said, kept); sessionStorage.removeItem("durable-notice"); }
  const seenStreams = new Set();
  const openSteps = new Set();
  let answered = null;
  let shownQuestion = null;
  let shownSteps = "";
  let shownActions = "";
  let shownBudget = "";
  let loadFailed = false;
  let lastStatus = null;

  // Run an action; say what it did, or why it could not.
  async function act(label, call) {
    try {
      notice(said, await call());
      notice(problem, "");
    } catch (error) { notice(problem, `${label}: ${error.message}`, true); }
    shownActions = "";
    shownBudget = "";
    load();
  }

  async function load() {
    let run;
    try { run = await api(runPath(runId)); } catch (error) {
      if (error.status === 404) return notFound();
      notice(problem, error.message, true);
      loadFailed = true;
      return;
    }
    try {
      const [history, stepList, state, waits, children, usage] = await Promise.all([
        api(`${runPath(runId)}/history`), api(`${runPath(runId)}/steps`), api(`${runPath(runId)}/state`),
        api(`${runPath(runId)}/waits`), api(`/api/runs?parent=${encodeURIComponent(runId)}&limit=200`),
        api(`${runPath(runId)}/usage`),
      ]);
      lastStatus = run.status;
      renderHeader(run, children);
      renderQuestion(waits);
      renderActions(run, history, stepList);
      renderBudget(run, usage, waits);
      renderValues(run, state);
      renderTimeline(run, history, usage);
      renderSteps(stepList, usage);
      for (const event of history)
        if (event.kind === "stream.value" && !seenStreams.has(event.name)) follow(event.name);
      if (loadFailed) notice(problem, "");
      loadFailed = false;
    } catch (error) {
      notice(problem, error.message, true);
      loadFailed = true;
    }
  }

  // An unknown run: say so, and stop asking.
  function notFound() {
    stopPage();
    view.replaceChildren(el("section", { id: "not-found" },
      el("h2", {}, "No such run"),
      el("p", {}, "There is no run with the id ", el("code", {}, runId), " on this server's journal (it may have been pruned)."),
      el("a", { href: "#/" }, "Back to the runs")));
  }

  function renderHeader(run, children) {
    const ended = ENDED.includes(run.status);
    const took = duration((ended ? ms(run.updated_at) : Date.now()) - ms(run.created_at));
    const parts = [el("h2", {}, run.run_id, " ", badge(run.status)),
      el("div", {}, `workflow ${run.workflow} (version ${run.version})`, run.queue ? ` · queue ${run.queue}` : ""),
      el("div", {}, `created ${when(run.created_at)} · updated ${when(run.updated_at)} · ${ended ? "took" : "running for"} ${took}`)];
    if (run.deadline) parts.push(el("div", {}, `deadline ${when(run.deadline)}`));
    if (run.parent_run_id) parts.push(el("div", { id: "parent" }, "parent ", runLink(run.parent_run_id)));
    if (children.length) {
      const list = el("div", { id: "children" }, "children ");
      children.forEach((child) => list.append(runLink(child.run_id), " ", badge(child.status), " "));
      parts.push(list);
    }
    header.replaceChildren(...parts);
  }

  function renderQuestion(waits) {
    if (!waits.length) { question.replaceChildren(); question.hidden = true; shownQuestion = null; return; }
    const wait = waits[0];
    // Drawn once per question, so an answer being typed survives the polling.
    if (answered === wait.wait_id || shownQuestion === wait.wait_id) return;
    shownQuestion = wait.wait_id;
    question.hidden = false;
    const answer = (value, said = `Answered ${JSON.stringify(value)}.`) => act("answer", async () => {
      answered = wait.wait_id;
      await post(`${runPath(runId)}/respond`, { value, wait_id: wait.wait_id });
      return said;
    });
    if (wait.input_type === "budget") {
      question.replaceChildren(...budgetQuestion(wait, runId, act, problem, answer));
      return;
    }
    const controls = el("div", { class: "answers" });
    if (wait.options && wait.options.length) {
      for (const option of wait.options) controls.append(el("button", { "data-option": option.id, onclick: () => answer(option.id) }, option.label));
    } else {
      const box = el("input", { id: "answer-text", placeholder: "your answer" });
      controls.append(box, el("button", { id: "answer-send", onclick: () => answer(box.value) }, "Send"));
    }
    question.replaceChildren(el("h2", {}, "question"), el("p", { id: "question-text" }, wait.question), controls);
  }

  function renderActions(run, history, stepList) {
    // Rebuilt only when what they depend on changes, so a half-typed event survives polling.
    const openWaits = openEventWaits(history);
    const key = JSON.stringify([run.status, run.error, stepList.map((s) => [s.position, s.name]), openWaits]);
    if (key === shownActions) return;
    shownActions = key;
    const parts = [];
    if (!ENDED.includes(run.status)) parts.push(cancelButton(run), eventForm(openWaits));
    // A run failed at its deadline is past it still: resumed or re-run, it fails again at once.
    const pastDeadline = run.status === "failed" && run.error && run.error.code === "WORKFLOW_TIMEOUT";
    if (pastDeadline) parts.push(el("p", { class: "hint", id: "no-resume" }, "This run failed at its deadline, which has passed: resumed or re-run it would fail again at once. Start a new run instead."));
    else if (run.status === "failed") parts.push(resumeButton(run));
    if (["completed", "failed"].includes(run.status) && stepList.length && !pastDeadline) parts.push(rerunControls(stepList));
    actions.replaceChildren(el("h2", {}, "actions"), ...parts);
    actions.hidden = !parts.length;
  }

  function cancelButton(run) {
    return el("button", { id: "cancel", class: "danger", onclick: () => {
      if (!confirm(`Cancel run ${run.run_id} and its unfinished children? A cancelled run cannot be resumed.`)) return;
      act("cancel", async () => {
        await post(`${runPath(runId)}/cancel`);
        return `Cancelled run ${run.run_id} (and its unfinished children).`;
      });
    } }, "Cancel run…");
  }

  function resumeButton(run) {
    const inStep = run.error && run.error.code === "STEP_FAILED";
    const label = !inStep ? "Resume (replay under the code loaded now)"
      : run.error.step ? `Retry step '${run.error.step}'` : "Retry the failed step";
    return el("button", { id: "resume", title: inStep
      ? "Runs the failed step again; its recorded failure is kept, marked superseded."
      : "Replays the run's journal under the workflow code this server loaded (after a fix is deployed).",
    onclick: () => act("resume", async () => {
      const did = await post(`${runPath(runId)}/resume`);
      return did.resumed === "step"
        ? `Resumed: step '${did.step}' (#${did.position}) runs again; its failure is kept, marked superseded.`
        : "Resumed: the run's journal is replayed under the code loaded now.";
    }) }, label);
  }

  function rerunControls(stepList) {
    const pick = el("select", { id: "rerun-position", "aria-label": "re-run from" },
      ...stepList.map((s) => el("option", { value: s.position }, `#${s.position} ${s.name}`)));
    const go = el("button", { id: "rerun", onclick: () => {
      const position = Number(pick.value);
      if (!confirm(`Re-run this run from step #${position}? Its journal from #${position} on is kept but superseded.`)) return;
      act("re-run", async () => {
        await post(`${runPath(runId)}/rerun`, { position });
        return `Re-running from #${position}: the entries from there on are superseded and run again.`;
      });
    } }, "Re-run from step");
    return el("span", { class: "rerun" }, pick, go);
  }

  function eventForm(openWaits) {
    const name = el("input", { id: "event-name", placeholder: "event name", value: openWaits[0] || "", list: "event-names" });
    const payload = el("input", { id: "event-payload", placeholder: "payload (JSON)", value: "null" });
    const key = el("input", { id: "event-key", placeholder: "optional key (sent once)" });
    const form = el("form", { id: "event-form", class: "inline" },
      el("datalist", { id: "event-names" }, ...openWaits.map((w) => el("option", { value: w }))),
      name, payload, key, el("button", { type: "submit", id: "event-send" }, "Send event"));
    form.onsubmit = (submitted) => {
      submitted.preventDefault();
      let body;
      try { body = JSON.parse(payload.value || "null"); } catch (error) {
        notice(problem, `event: the payload is not JSON: ${error.message}`, true);
        return;
      }
      const headers = key.value.trim() ? { "Idempotency-Key": key.value.trim() } : {};
      const eventName = name.value.trim();
      act("event", async () => {
        await api(`${runPath(runId)}/events/${encodeURIComponent(eventName)}`, { method: "POST", body: JSON.stringify(body), headers });
        return `Sent event '${eventName}' to run ${runId}.`;
      });
    };
    return form;
  }

  // The tree's spend against its budget; new caps here when no budget question asks
  // for them (redrawn only when the budget changes, so a cap being typed survives).
  function renderBudget(run, usage, waits) {
    const asking = waits.some((wait) => wait.input_type === "budget");
    budget.hidden = !usage.budget && !usage.usd && !usage.tokens;
    const key = JSON.stringify([usage, run.status, asking]);
    if (budget.hidden || key === shownBudget) return;
    shownBudget = key;
    const parts = budgetSummary(usage);
    if (usage.budget && !asking && !ENDED.includes(run.status)) parts.push(raiseForm(runId, usage.budget, act, problem));
    budget.replaceChildren(...parts);
  }

  function renderValues(run, state) {
    const parts = [el("h2", {}, "input"), el("pre", { id: "input" }, json(run.input))];
    if (run.output !== null) parts.push(el("h2", {}, "output"), el("pre", { id: "output" }, json(run.output)));
    if (run.error) parts.push(el("h2", {}, "error"), el("pre", { id: "error", class: "error" }, json(run.error)));
    parts.push(el("h2", {}, "state"), el("pre", { id: "state" }, json(state)));
    values.replaceChildren(...parts);
  }

  function renderTimeline(run, history, usage) {
    timeline.replaceChildren(el("h2", {}, "timeline"), drawTimeline(run, history, usage.by_step));
  }

  function renderSteps(stepList, usage) {
    const text = JSON.stringify([stepList, usage.by_step]);
    if (text === shownSteps) return;
    shownSteps = text;
    steps.hidden = !stepList.length;
    const shown = stepList.slice(0, MAX_STEPS).map((step) => stepDetails(step, openSteps, usage.by_step[step.position]));
    const more = stepList.length > MAX_STEPS ? [el("p", { class: "hint" }, `${stepList.length - MAX_STEPS} later steps not shown (GET ${runPath(runId)}/steps has them all)`)] : [];
    steps.replaceChildren(el("h2", {}, "steps"), ...shown, ...more);
  }

  // One panel per stream: its values folded into one text (tokens read as the text
  // they make); a step attempt's values sit in a span of their own, struck out
  // (<del>) when the attempt is retracted. EventSource resumes by itself after a
  // dropped connection (Last-Event-ID: the last item's cursor).
  function follow(key) {
    seenStreams.add(key);
    live.hidden = false;
    const out = el("pre", { "data-stream": key });
    live.append(el("h2", {}, key), out);
    const query = token ? `?token=${encodeURIComponent(token)}` : "";
    const source = new EventSource(`${runPath(runId)}/streams/${encodeURIComponent(key)}${query}`);
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
    page.streams.push(source);
  }

  // Once a run has ended it changes only when acted on (each action reloads at once).
  poll(load, () => (ENDED.includes(lastStatus) ? 3000 : 1000));
}

// The names of the events the run waits for now (wait_for_event, not questions).
function openEventWaits(history) {
  const open = new Map();
  for (const event of history) {
    if (event.superseded || event.position === null) continue;
    if (event.kind === "wait.started" && !event.name.startsWith("user:") && !isGate(event)) open.set(event.position, event.name);
    if (event.kind === "wait.completed") open.delete(event.position);
  }
  return [...new Set(open.values())];
}

// One step: its idempotency key, input, result, what it spent, and each attempt with
// its error.
function stepDetails(step, openSteps, spent) {
  const attempts = step.attempts;
  const first = attempts.find((a) => a.started_at);
  const last = attempts[attempts.length - 1];
  const took = first && last && last.ended_at ? ` · ${duration(ms(last.ended_at) - ms(first.started_at))}` : "";
  const summary = el("summary", {}, `#${step.position} ${step.name} `, badge(step.status),
    ` ${attempts.length} attempt${attempts.length === 1 ? "" : "s"}${took}`,
    spent ? el("span", { class: "step-spend" }, ` · spent ${stepSpend(spent)}`) : null);
  const open = openSteps.has(step.position) || step.status === "failed";
  const details = el("details", { class: "step", "data-position": step.position, open });
  details.ontoggle = () => { if (details.open) openSteps.add(step.position); else openSteps.delete(step.position); };
  const input = step.input !== null ? json(step.input) : step.input_repr !== null ? `${step.input_repr}  (not JSON: kept as its repr)` : "(not journaled: no arguments, or an older journal)";
  details.append(summary,
    el("div", { class: "key" }, "idempotency key ", el("code", { class: "idempotency-key" }, step.idempotency_key)),
    el("h3", {}, "input"), el("pre", { class: "step-input" }, input));
  if (spent) details.append(el("h3", {}, "spent"), el("p", { class: "step-spent" }, `${stepSpend(spent)}, charged by ${spent.attempts} attempt${spent.attempts === 1 ? "" : "s"} (a failed or crashed attempt's spend counts)`));
  if (step.status === "completed") details.append(el("h3", {}, "result"), el("pre", { class: "step-result" }, json(step.result)));
  details.append(el("h3", {}, "attempts"), ...attempts.map(attemptDetails));
  return details;
}

function attemptDetails(attempt) {
  const took = attempt.started_at && attempt.ended_at ? ` · took ${duration(ms(attempt.ended_at) - ms(attempt.started_at))}` : "";
  const head = el("div", { class: "attempt-head" }, `attempt ${attempt.attempt ?? "?"} `, badge(attempt.outcome),
    attempt.started_at ? ` started ${when(attempt.started_at)}${took}` : "");
  const box = el("div", { class: `attempt ${attempt.outcome}`, "data-attempt": attempt.attempt }, head);
  if (attempt.error) box.append(el("div", { class: "attempt-error error" }, `${attempt.error.type}: ${attempt.error.message}`));
  if (attempt.retry_at) box.append(el("div", { class: "hint" }, `retried at ${when(attempt.retry_at)}`));
  if (attempt.traceback) box.append(el("pre", { class: "traceback" }, attempt.traceback));
  if (attempt.outcome === "interrupted") box.append(el("div", { class: "hint" }, "started and never finished (its process stopped); run again"));
  return box;
}
