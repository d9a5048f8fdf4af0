// Shared by every page: state, DOM helpers, the one way to call the daemon, timers, formatting.
// Every value from the daemon is put into the page with textContent, never as HTML.

export const state = { authEnabled: true, csrf: null, page: null, versions: [], active: {}, timers: [],
                       logSource: null, logKey: null, lastCalls: "", onUnauthorized: () => {} };
export const $ = (id) => document.getElementById(id);

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem && problem.detail ? problem.detail : `HTTP ${status}`);
    this.status = status;
    this.code = problem && problem.code;
    this.codeName = problem && problem.name;
  }
  get plain() {
    return this.code ? `${this.message} (error ${this.code} ${this.codeName})` : this.message;
  }
}

export async function api(method, path, body) {
  const headers = {};
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (response.status === 401 && state.authEnabled && !path.startsWith("/console/session")) state.onUnauthorized();
  if (!response.ok && !(path === "/readyz" && response.status === 503)) throw new ApiError(response.status, data);
  return data;
}

export function every(ms, fn) {
  const run = () => fn().catch((err) => console.warn(err));
  run();
  state.timers.push(setInterval(run, ms));
}

export function stopTimers() {
  for (const timer of state.timers) clearInterval(timer);
  state.timers = [];
}

export function formatBytes(n) {
  if (n == null) return "…";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function formatSeconds(s) {
  if (s == null || s < 0) return "";
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

export function formatWhen(value) {
  if (value == null || value === "") return "";
  const when = new Date(typeof value === "number" ? value * 1000 : value);
  return Number.isNaN(when.getTime()) ? String(value) : when.toLocaleString();
}
