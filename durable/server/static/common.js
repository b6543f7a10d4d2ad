// The web view's shared parts: the API client (with the token), building elements,
// formatting times and durations, and the one timer a page polls with.
// Everything a run stores is put on the page as text (textContent), never as HTML.
"use strict";

const params = new URLSearchParams(location.search);
if (params.get("token")) sessionStorage.setItem("durable-token", params.get("token"));
let token = sessionStorage.getItem("durable-token");
const view = document.getElementById("view");

// What the page showing now polls with and listens to; route() stops them all.
const page = { timer: null, streams: [], generation: 0 };

function stopPage() {
  clearTimeout(page.timer);
  page.timer = null;
  page.generation += 1;  // a load in flight for the page before schedules nothing more
  page.streams.forEach((source) => source.close());
  page.streams = [];
}

// Call load now, then again `every` milliseconds after each one ends (a number, or a
// function asked each time), until the page changes: never two loads at once.
function poll(load, every) {
  const generation = page.generation;
  const tick = async () => {
    try { await load(); } catch (error) { console.error(error); }  // try again next time
    if (generation !== page.generation) return;
    page.timer = setTimeout(tick, typeof every === "function" ? every() : every);
  };
  tick();
}

// A server started with --token answers the page but not the API without it: on a
// 401 the page stops polling and asks for the token, kept for this tab only.
function askForToken(refused) {
  stopPage();
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

class ApiError extends Error {
  constructor(status, code, message) {
    super(`${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

// The JSON API: resolves to the body (and, with { withHeaders: true }, the headers too).
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
    throw new ApiError(401, "UNAUTHORIZED", "this server needs its API token");
  }
  const data = await response.json();
  if (!response.ok) throw new ApiError(response.status, data.code, data.message);
  return options.withHeaders ? { data, headers: response.headers } : data;
}

const runPath = (runId) => `/api/runs/${encodeURIComponent(runId)}`;
const post = (path, payload) => api(path, { method: "POST", body: JSON.stringify(payload ?? {}) });

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node[key] = value;
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const json = (value) => JSON.stringify(value, null, 2);
const ms = (iso) => new Date(iso).getTime();
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
// A time in ms since the epoch, as when() shows it; beyond what a Date holds (a sleep of
// 1e300 s) it says so instead of throwing.
const atTime = (msSinceEpoch) => (Number.isFinite(msSinceEpoch) && Math.abs(msSinceEpoch) <= 8.64e15
  ? when(new Date(msSinceEpoch).toISOString()) : "beyond any date");
const ENDED = ["completed", "failed", "cancelled"];
const badge = (status) => el("span", { class: `status ${status}`, "data-status": status }, status);
const runLink = (id) => el("a", { href: `#/runs/${encodeURIComponent(id)}`, class: "run-link" }, id);

// A duration in milliseconds, as a person reads it: 840 ms, 2.4 s, 3 min 5 s, 2 h 10 min.
function duration(millis) {
  if (millis < 0 || !Number.isFinite(millis)) return "";
  if (millis < 1000) return `${Math.round(millis)} ms`;
  const seconds = millis / 1000;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

// A line that says what an action did (or what went wrong), kept until the next one.
function notice(box, text, isError = false) {
  box.textContent = text;
  box.className = isError ? "notice error" : "notice";
  box.hidden = !text;
}

function setTitle(text) {
  document.getElementById("where").textContent = text;
}
