// The ProcVision Runner console: sign-in, pages, wiring. One page over the daemon's JSON API
// (no framework, no network); each page is a module of its own.

import { enterCalls } from "./calls.js";
import { $, api, every, state, stopTimers } from "./core.js";
import { enterHealth } from "./health.js";
import { wireInstall } from "./install.js";
import { closeLogs, enterLogs, followLogs } from "./logs.js";
import { enterOverview } from "./overview.js";
import { enterTry, runTry } from "./try.js";

async function start() {
  const session = await api("GET", "/console/session");
  state.authEnabled = session.auth_enabled;
  state.csrf = session.csrf;
  if (session.signed_in) enter(); else showSignIn();
}

function showSignIn() {
  stopTimers();
  closeLogs();
  state.csrf = null;
  $("tabs").hidden = true;
  $("signout").hidden = true;
  for (const page of document.querySelectorAll(".page")) page.hidden = page.id !== "page-signin";
  $("token").focus();
}

async function signIn(event) {
  event.preventDefault();
  $("signin-error").textContent = "";
  try {
    const answer = await api("POST", "/console/session", { token: $("token").value });
    state.csrf = answer.csrf;
    $("token").value = "";
    enter();
  } catch (err) {
    $("signin-error").textContent = err.status === 401
      ? "Wrong token. Use the token in the file .token of the runner's root folder." : err.plain;
  }
}

async function signOut() {
  try { await api("DELETE", "/console/session"); } finally { showSignIn(); }
}

function enter() {
  $("tabs").hidden = false;
  $("signout").hidden = !state.authEnabled;
  showPage((location.hash || "#overview").slice(1));
}

const PAGES = { overview: enterOverview, logs: enterLogs, try: enterTry, calls: enterCalls, health: enterHealth };

function showPage(name) {
  if (!PAGES[name]) name = "overview";
  state.page = name;
  stopTimers();
  closeLogs();
  for (const page of document.querySelectorAll(".page")) page.hidden = page.id !== `page-${name}`;
  for (const link of document.querySelectorAll("#tabs a")) link.classList.toggle("current", link.dataset.page === name);
  every(3000, refreshReadiness);
  PAGES[name]();
}

async function refreshReadiness() {
  const ready = await api("GET", "/readyz");
  const badge = $("readiness");
  badge.textContent = ready.ready ? "ready" : "not ready";
  badge.className = `badge ${ready.ready ? "ready" : "notready"}`;
  badge.title = (ready.reasons || []).join("\n");
}

document.addEventListener("DOMContentLoaded", () => {
  state.onUnauthorized = showSignIn;
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("try-run").addEventListener("click", runTry);
  $("log-version").addEventListener("change", followLogs);
  let pending = null;
  $("log-filter").addEventListener("input", () => {
    clearTimeout(pending);
    pending = setTimeout(followLogs, 300);
  });
  window.addEventListener("hashchange", () => { if (!$("tabs").hidden) showPage(location.hash.slice(1)); });
  wireInstall();
  start().catch((err) => { $("readiness").textContent = `cannot reach the daemon: ${err.message}`; });
});
