// Budgets on a run's page: what the run tree spent against its budget, a budget
// question (the step it holds back, Stop, and a field to raise the budget), and the
// spend of each step.
"use strict";

// A budget question is a wait named budget:<position>, at the position of the call it
// holds back (its wait.started comes before that call's first event).
const isGate = (event) => event.name.startsWith("budget:");

function money(usd) {
  return `$${Number(usd.toFixed(usd < 1 ? 4 : 2))}`;
}

function spendText(usd, tokens) {
  return !usd && !tokens ? "nothing" : `${money(usd)} · ${tokens} tokens`;
}

function capsText(budget) {
  const caps = [];
  if (budget.usd !== null) caps.push(money(budget.usd));
  if (budget.tokens !== null) caps.push(`${budget.tokens} tokens`);
  return caps.join(" · ");
}

// What a step spent (usage.by_step's entry for it), as a few words; "" for nothing.
function stepSpend(spent) {
  return spent ? `${money(spent.usd)} · ${spent.tokens} tokens` : "";
}

// The budget panel: the tree's spend against the caps, who holds them, the run's own.
function budgetSummary(usage) {
  const parts = [el("h2", {}, "budget")];
  const spent = el("p", { id: "budget-spent" }, `spent ${spendText(usage.usd, usage.tokens)} (this run and the runs below it)`);
  if (usage.budget) {
    spent.append(` of ${capsText(usage.budget)}`);
    const holder = usage.budget_run_id === usage.run_id ? "this run" : runLink(usage.budget_run_id);
    parts.push(spent, el("p", { id: "budget-holder" }, "budget held by ", holder));
    parts.push(meters(usage));
  } else parts.push(spent, el("p", { class: "hint" }, "no budget applies to this run"));
  if (usage.own.usd !== usage.usd || usage.own.tokens !== usage.tokens)
    parts.push(el("p", { class: "hint" }, `this run itself: ${spendText(usage.own.usd, usage.own.tokens)}`));
  return parts;
}

// A bar per capped unit: how much of the cap is spent.
function meters(usage) {
  const box = el("div", { class: "meters" });
  for (const unit of ["usd", "tokens"]) {
    const cap = usage.budget[unit];
    if (cap === null) continue;
    const share = cap > 0 ? Math.min(usage[unit] / cap, 1) : 1;
    box.append(el("div", { class: `meter${share >= 1 ? " full" : ""}`, "data-unit": unit, title: `${unit}: ${Math.round(share * 100)}% of the cap` },
      el("div", { class: "fill", style: `width:${share * 100}%` })));
  }
  return box;
}

// Fields for new caps and a button that raises the budget over the run; `act` reports
// what it did. A field left empty keeps that cap.
function raiseForm(runId, budget, act, problem) {
  const usd = el("input", { id: "budget-usd", type: "number", min: "0", step: "any", placeholder: budget && budget.usd !== null ? `usd (now ${budget.usd})` : "usd" });
  const tokens = el("input", { id: "budget-tokens", type: "number", min: "0", step: "1", placeholder: budget && budget.tokens !== null ? `tokens (now ${budget.tokens})` : "tokens" });
  const form = el("form", { id: "budget-form", class: "inline" }, usd, tokens,
    el("button", { type: "submit", id: "budget-raise" }, "Raise budget"));
  form.onsubmit = (submitted) => {
    submitted.preventDefault();
    const body = {};
    if (usd.value.trim()) body.usd = Number(usd.value);
    if (tokens.value.trim()) body.tokens = Number(tokens.value);
    if (!Object.keys(body).length) {
      notice(problem, "raise: enter a new cap in usd, tokens or both", true);
      return;
    }
    act("raise", async () => {
      const did = await post(`${runPath(runId)}/budget`, body);
      return `Raised the budget of run ${did.budget_run_id} to ${capsText(did.budget)}; the runs it held back go on.`;
    });
  };
  return form;
}

// A budget question: what was spent against which cap, the call it holds back, Stop
// (the call raises BudgetExceeded in the workflow) and new caps.
function budgetQuestion(wait, runId, act, problem, answer) {
  const held = wait.budget || {};
  const unit = held.unit === "tokens" ? "token" : "dollar";
  const spent = held.spent || {};
  const holder = held.run_id === runId ? "this run" : runLink(held.run_id);
  const call = `The step or child at #${wait.wait_id.slice("budget:".length)} (not started yet)`;
  const text = el("p", { id: "question-text" }, `The ${unit} budget held by `, holder, ` is reached: spent ${spendText(spent.usd || 0, spent.tokens || 0)} of ${capsText(held.cap || {})}. `,
    `${call} waits. Raise the budget to let it go on, or stop it: the workflow gets BudgetExceeded there.`);
  const stop = el("button", { "data-option": "stop", class: "danger", onclick: () => answer("stop", "Stopped: the held call raises BudgetExceeded in the workflow.") }, "Stop");
  return [el("h2", {}, "budget reached"), text,
    el("div", { class: "answers" }, stop, raiseForm(runId, held.cap, act, problem))];
}
