// The ProcVision Runner console: one page over the daemon's JSON API (no framework, no network).
// Every value from the daemon is put into the page with textContent, never as HTML.
"use strict";

const state = { authEnabled: true, csrf: null, page: null, versions: [], active: {}, timers: [],
                logSource: null, logKey: null, lastCalls: "" };
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

// --- talking to the daemon -------------------------------------------------------------------

class ApiError extends Error {
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

async function api(method, path, body) {
  const headers = {};
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (response.status === 401 && state.authEnabled && !path.startsWith("/console/session")) showSignIn();
  if (!response.ok && !(path === "/readyz" && response.status === 503)) throw new ApiError(response.status, data);
  return data;
}

// --- sign-in ---------------------------------------------------------------------------------

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

// --- pages -----------------------------------------------------------------------------------

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

function every(ms, fn) {
  const run = () => fn().catch((err) => console.warn(err));
  run();
  state.timers.push(setInterval(run, ms));
}

function stopTimers() {
  for (const timer of state.timers) clearInterval(timer);
  state.timers = [];
}

async function refreshReadiness() {
  const ready = await api("GET", "/readyz");
  const badge = $("readiness");
  badge.textContent = ready.ready ? "ready" : "not ready";
  badge.className = `badge ${ready.ready ? "ready" : "notready"}`;
  badge.title = (ready.reasons || []).join("\n");
}

// --- overview --------------------------------------------------------------------------------

function enterOverview() { every(1500, refreshOverview); }

function formatBytes(n) {
  if (n == null) return "…";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function formatSeconds(s) {
  if (s == null || s < 0) return "";
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function formatWhen(value) {
  if (value == null || value === "") return "";
  const when = new Date(typeof value === "number" ? value * 1000 : value);
  return Number.isNaN(when.getTime()) ? String(value) : when.toLocaleString();
}

let sizes = {};
let sizesAt = 0;

async function refreshOverview() {
  const [versions, active] = await Promise.all([api("GET", "/algorithms"), api("GET", "/algorithms/active")]);
  state.versions = versions;
  state.active = active;
  if (Date.now() - sizesAt > 10000 || versions.some((v) => sizes[`${v.name}@${v.version}`] == null)) {
    sizesAt = Date.now();
    for (const s of await api("GET", "/console/sizes")) sizes[`${s.name}@${s.version}`] = s.size_bytes;
  }
  renderBindings(active);
  renderVersions(versions, active);
  const running = versions.filter((v) => !["installed", "invalid"].includes(v.state));
  const shown = await Promise.all(running.map((v) =>
    api("GET", `/algorithms/${encodeURIComponent(v.name)}/${encodeURIComponent(v.version)}`).catch(() => null)));
  renderWorkers(shown.filter(Boolean));
}

function renderBindings(active) {
  const body = $("bindings").tBodies[0];
  body.replaceChildren();
  const pids = Object.keys(active).sort();
  if (!pids.length) body.append(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "no product is bound")));
  for (const pid of pids) {
    const b = active[pid];
    body.append(el("tr", { "data-pid": pid },
      el("td", {}, pid), el("td", { class: "binding" }, `${b.name} ${b.version}`),
      el("td", { class: "muted" }, formatWhen(b.activated_at)),
      el("td", {},
        el("button", { type: "button", class: "rollback", onclick: () => rollback(pid, b) }, "Rollback"),
        el("button", { type: "button", class: "deactivate", onclick: () => deactivate(pid, b) }, "Deactivate"))));
  }
}

function pidsOf(v, active) {
  return Object.keys(active).filter((pid) => active[pid].name === v.name && active[pid].version === v.version);
}

function renderVersions(versions, active) {
  const body = $("versions").tBodies[0];
  body.replaceChildren();
  if (!versions.length) body.append(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "nothing installed yet")));
  for (const v of versions) {
    const bound = pidsOf(v, active);
    const supported = v.supported_pids || [];
    const elsewhere = supported.filter((pid) => active[pid] && active[pid].name === v.name
                                                && active[pid].version !== v.version);
    const actions = el("td", {});
    if (v.state !== "invalid") {
      actions.append(el("button", { type: "button", class: "activate", onclick: () => activate(v) }, "Activate"));
      if (elsewhere.length) {
        actions.append(el("button", { type: "button", class: "switch", onclick: () => switchTo(v, elsewhere) },
          "Switch here"));
      }
    }
    actions.append(el("button", { type: "button", class: "uninstall", onclick: () => uninstall(v, bound) },
      "Uninstall"));
    const signer = el("td", { title: v.signer_trusted ? "signer trusted" : "signer not in the trust store" },
      v.signer || "unknown");
    if (v.signer && !v.signer_trusted && !["unsigned", "unchecked"].includes(v.signer)) signer.classList.add("error");
    body.append(el("tr", { "data-version": `${v.name}@${v.version}`, "data-state": v.state },
      el("td", {}, v.name), el("td", {}, v.version),
      el("td", { class: "desired" }, bound.length ? "serving" : "idle"),
      el("td", { class: `observed state-${v.state}` }, v.state),
      signer, el("td", {}, formatBytes(sizes[`${v.name}@${v.version}`])),
      el("td", {}, bound.length ? bound.join(", ") : el("span", { class: "muted" }, supported.join(", "))),
      actions));
  }
}

function renderWorkers(shown) {
  const body = $("workers").tBodies[0];
  body.replaceChildren();
  const now = Date.now() / 1000;
  let rows = 0;
  for (const v of shown) {
    const status = v.workers || {};
    for (const w of status.workers || []) {
      const last = w.last_error || {};
      rows += 1;
      // A stopped or failed worker's last process id is history, not a process to look for.
      const alive = w.pid && !["stopped", "failed", "installed", "invalid"].includes(w.state);
      const tail = (last.stderr_tail || []).slice(-8).join("\n");
      body.append(el("tr", { "data-worker": `${v.name}@${v.version}#${w.index}` },
        el("td", {}, `${v.name} ${v.version}`), el("td", {}, w.index), el("td", { class: "worker-pid" }, alive ? w.pid : "–"),
        el("td", { class: `state-${w.state}` }, w.state),
        el("td", {}, alive && w.started_at ? formatSeconds(now - w.started_at) : ""), el("td", {}, w.restarts),
        el("td", { class: "last-exit", title: last.reason || "" }, last.exit_code ?? (last.reason ? "?" : "–")),
        el("td", { class: "stderr-tail" }, tail ? el("pre", {}, tail) : "")));
    }
  }
  if (!rows) body.append(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "no worker is running")));
}

// --- actions, each confirmed with before -> after ---------------------------------------------

function confirmAction(title, text, pids) {
  return new Promise((resolve) => {
    const dialog = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-pids-label").hidden = pids === undefined;
    $("confirm-pids").value = pids === undefined ? "" : pids.join(", ");
    dialog.addEventListener("close", () => {
      const list = $("confirm-pids").value.split(/[\s,]+/).filter(Boolean);
      resolve(dialog.returnValue === "ok" ? list : null);
    }, { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

function describe(pids, to) {
  return pids.map((pid) => {
    const b = state.active[pid];
    return `${pid}: ${b ? `${b.name} ${b.version}` : "none"} → ${to}`;
  }).join("; ");
}

async function runAction(what, call) {
  const out = $("action-result");
  out.className = "";
  out.textContent = `${what}…`;
  try {
    const answer = await call();
    out.className = "ok";
    out.textContent = `${what}: done.`;
    await refreshOverview();
    return answer;
  } catch (err) {
    out.className = "error";
    out.textContent = `${what} failed: ${err.plain || err.message}`;
    return null;
  }
}

async function activate(v) {
  const pids = (v.supported_pids || []).filter((pid) => !state.active[pid]
    || state.active[pid].name !== v.name || state.active[pid].version !== v.version);
  const chosen = await confirmAction(`Activate ${v.name} ${v.version}`,
    describe(pids.length ? pids : v.supported_pids || [], `${v.name} ${v.version}`)
      + ". Workers start if they are not running.", pids.length ? pids : v.supported_pids || []);
  if (!chosen || !chosen.length) return;
  await runAction(`Activate ${v.name} ${v.version} for ${chosen.join(", ")}`,
    () => api("POST", "/algorithms/activate", { name: v.name, version: v.version, pids: chosen }));
}

async function switchTo(v, pids) {
  const chosen = await confirmAction(`Switch to ${v.name} ${v.version}`,
    `${describe(pids, v.version)}. Calls move once the new version is ready.`, pids);
  if (!chosen || !chosen.length) return;
  await runAction(`Switch ${chosen.join(", ")} to ${v.version}`,
    () => api("POST", "/algorithms/switch", { name: v.name, version: v.version, pids: chosen }));
}

async function rollback(pid, b) {
  const ok = await confirmAction(`Roll back ${pid}`,
    `${pid}: ${b.name} ${b.version} → the version it served before`);
  if (!ok) return;
  await runAction(`Roll back ${pid}`, () => api("POST", "/algorithms/rollback", { pids: [pid] }));
}

async function deactivate(pid, b) {
  const ok = await confirmAction(`Deactivate ${pid}`, `${pid}: ${b.name} ${b.version} → none (calls for ${pid} fail)`);
  if (!ok) return;
  await runAction(`Deactivate ${pid}`, () => api("POST", "/algorithms/deactivate", { pids: [pid] }));
}

async function uninstall(v, bound) {
  const warning = bound.length ? ` It serves ${bound.join(", ")}: those products lose it.` : "";
  const ok = await confirmAction(`Uninstall ${v.name} ${v.version}`,
    `${v.name} ${v.version}: ${v.state} → removed.${warning}`);
  if (!ok) return;
  const force = bound.length ? "?force=true" : "";
  await runAction(`Uninstall ${v.name} ${v.version}`,
    () => api("DELETE", `/algorithms/${encodeURIComponent(v.name)}/${encodeURIComponent(v.version)}${force}`));
}

// --- install with live progress ----------------------------------------------------------------

function upload(file) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/algorithms/install");
    if (state.csrf) xhr.setRequestHeader("X-CSRF-Token", state.csrf);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) setStages([`uploading ${Math.round((100 * e.loaded) / e.total)} %`], null);
    };
    xhr.onload = () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch (_) { data = null; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data); else reject(new ApiError(xhr.status, data));
    };
    xhr.onerror = () => reject(new Error("the daemon could not be reached"));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

function setStages(done, current) {
  const list = $("install-progress");
  list.replaceChildren(...done.map((s) => el("li", { class: "done" }, s)));
  if (current) list.append(el("li", { class: "current" }, current));
}

async function install(file) {
  const result = $("install-result");
  result.className = "";
  result.textContent = `Installing ${file.name}…`;
  try {
    let op = await upload(file);
    const deadline = Date.now() + 30 * 60 * 1000;
    while (op.state === "pending" || op.state === "running") {
      const stages = (op.stages || []).filter((s) => s !== op.stage);
      setStages(["uploaded", ...stages], op.stage || op.state);
      if (Date.now() > deadline) throw new Error("the install did not finish in 30 minutes; see Operations");
      await new Promise((r) => setTimeout(r, 400));
      op = await api("GET", `/operations/${encodeURIComponent(op.id)}`);
    }
    setStages(["uploaded", ...(op.stages || [])], null);
    if (op.state === "succeeded") {
      const r = op.result || {};
      result.className = "ok";
      result.textContent = `${r.name || ""} ${r.version || ""}: installed${r.idempotent ? " (already there)" : ""}.`;
    } else {
      const e = op.error || {};
      result.className = "error";
      result.textContent = `Install failed: ${e.message || "unknown reason"} (error ${e.code} ${e.name})`;
    }
    await refreshOverview();
  } catch (err) {
    result.className = "error";
    result.textContent = `Install failed: ${err.plain || err.message}`;
  }
}

function wireInstall() {
  const zone = $("dropzone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files.length) install(e.dataTransfer.files[0]);
  });
  $("install-file").addEventListener("change", (e) => {
    if (e.target.files.length) install(e.target.files[0]);
    e.target.value = "";
  });
}

// --- logs --------------------------------------------------------------------------------------

async function enterLogs() {
  const select = $("log-version");
  const versions = await api("GET", "/algorithms");
  const keep = select.value;
  select.replaceChildren(...versions.map((v) => el("option", { value: `${v.name}/${v.version}` },
    `${v.name} ${v.version}`)));
  if (keep && versions.some((v) => `${v.name}/${v.version}` === keep)) select.value = keep;
  followLogs();
}

function closeLogs() {
  if (state.logSource) state.logSource.close();
  state.logSource = null;
  state.logKey = null;
}

function followLogs() {
  const target = $("log-version").value;
  const filter = $("log-filter").value.trim();
  const key = `${target}|${filter}`;
  if (!target || key === state.logKey) return;
  closeLogs();
  state.logKey = key;
  const [name, version] = target.split("/");
  const lines = $("log-lines");
  lines.replaceChildren();
  const query = new URLSearchParams({ tail: "200" });
  if (filter) query.set("filter", filter);
  const source = new EventSource(
    `/algorithms/${encodeURIComponent(name)}/${encodeURIComponent(version)}/logs/stream?${query}`);
  state.logSource = source;
  $("log-state").textContent = "following…";
  source.addEventListener("line", (e) => {
    lines.append(el("div", { class: "log-line" }, JSON.parse(e.data)));
    while (lines.childElementCount > 2000) lines.firstElementChild.remove();
    lines.scrollTop = lines.scrollHeight;
  });
  source.onerror = () => { $("log-state").textContent = "reconnecting…"; };
  source.onopen = () => { $("log-state").textContent = "following"; };
}

// --- try it --------------------------------------------------------------------------------------

async function enterTry() {
  const select = $("try-pid");
  const active = await api("GET", "/algorithms/active");
  const keep = select.value;
  select.replaceChildren(...Object.keys(active).sort().map((pid) =>
    el("option", { value: pid }, `${pid} (${active[pid].name} ${active[pid].version})`)));
  if (keep && active[keep]) select.value = keep;
}

function overlay(box, src, width, height, rects, extraRects) {
  box.replaceChildren();
  const stage = el("div", { class: "stage" });
  stage.style.position = "relative";
  const img = el("img", { src, alt: "call image" });
  img.style.width = "100%";
  img.style.display = "block";
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  Object.assign(svg.style, { position: "absolute", left: 0, top: 0, width: "100%", height: "100%" });
  const draw = (r, cls, color) => {
    const rect = document.createElementNS(SVG, "rect");
    for (const [k, v] of Object.entries({ x: r.x, y: r.y, width: r.width, height: r.height })) rect.setAttribute(k, v);
    rect.setAttribute("class", cls);
    rect.setAttribute("fill", "none");
    rect.setAttribute("stroke", color);
    rect.setAttribute("stroke-width", Math.max(2, width / 200));
    if (r.label) {
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${r.label}${r.score != null ? ` ${r.score}` : ""}`;
      rect.append(title);
    }
    svg.append(rect);
  };
  for (const r of rects || []) draw(r, "defect", "#e53935");
  for (const r of extraRects || []) draw(r, "position", "#1e88e5");
  stage.append(img, svg);
  box.append(stage);
}

function imageSize(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve([img.naturalWidth, img.naturalHeight]);
    img.onerror = () => reject(new Error("the browser cannot show this image (PNG or JPEG only)"));
    img.src = url;
  });
}

async function runTry() {
  const file = $("try-image").files[0];
  const pid = $("try-pid").value;
  const summary = $("try-summary");
  const out = $("try-result");
  summary.className = "";
  if (!pid) { summary.textContent = "No product is bound: activate a version first."; return; }
  if (!file) { summary.textContent = "Choose an image first."; return; }
  summary.textContent = "Running…";
  out.textContent = "";
  const form = new FormData();
  form.append("pid", pid);
  form.append("image", file, file.name);
  const guide = $("try-guide").files[0];
  if (guide) form.append("guide_image", guide, guide.name);
  const url = URL.createObjectURL(file);
  const [width, height] = await imageSize(url);
  const box = $("try-view");
  try {
    const result = await api("POST", "/execute", form);
    const data = result.data || {};
    overlay(box, url, width, height, data.defect_rects, data.position_rects);
    const verdict = data.result_status ? `${data.result_status}${data.ng_reason ? ` (${data.ng_reason})` : ""}` : "";
    summary.className = result.status === "OK" ? "ok" : "error";
    summary.textContent = `${result.status} ${verdict} — ${(data.defect_rects || []).length} defect(s), `
      + `${Math.round(result.latency_ms)} ms on ${result.served_by ? result.served_by.version : "?"}`;
    out.textContent = JSON.stringify(result, null, 2);
  } catch (err) {
    overlay(box, url, width, height, [], []);
    summary.className = "error";
    summary.textContent = `The call failed: ${err.plain || err.message}`;
  }
}

// --- recent calls --------------------------------------------------------------------------------

function enterCalls() { every(2000, refreshCalls); }

async function refreshCalls() {
  const calls = await api("GET", "/console/calls?limit=60");
  const signature = calls.map((c) => c.id).join(",");
  if (signature === state.lastCalls) return;
  state.lastCalls = signature;
  const list = $("calls-list");
  list.replaceChildren();
  if (!calls.length) list.append(el("p", { class: "muted" }, "No calls since the daemon started."));
  for (const c of calls) {
    const tile = el("div", { class: "tile", "data-call": c.id });
    const box = el("div", {});
    if (c.thumbnail) overlay(box, c.thumbnail, c.image_width, c.image_height, c.defect_rects, []);
    const verdict = c.result_status ? ` ${c.result_status}` : "";
    tile.append(box,
      el("div", { class: c.status === "OK" ? "ok" : "error" }, `${c.status}${verdict}`),
      el("div", {}, `${c.pid} · ${c.latency_ms != null ? Math.round(c.latency_ms) : "?"} ms · `
        + `${c.defect_rects.length} rect(s)`),
      el("div", { class: "muted" }, `${new Date(c.at * 1000).toLocaleTimeString()}`
        + `${c.served_by ? ` · ${c.served_by.version}` : ""}${c.error_code ? ` · error ${c.error_code}` : ""}`));
    if (c.message && c.status !== "OK") tile.append(el("div", { class: "error" }, c.message));
    list.append(tile);
  }
}

// --- health --------------------------------------------------------------------------------------

function enterHealth() { every(2000, refreshHealth); }

function chart(canvas, series, colors) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width;
  const h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const all = series.flat().filter((v) => v != null);
  const top = Math.max(1, ...all) * 1.1;
  ctx.strokeStyle = "#d9dee6";
  ctx.beginPath(); ctx.moveTo(0, h - 0.5); ctx.lineTo(w, h - 0.5); ctx.stroke();
  ctx.fillStyle = "#6b7484";
  ctx.font = "10px sans-serif";
  ctx.fillText(top.toFixed(top < 10 ? 1 : 0), 2, 10);
  series.forEach((values, i) => {
    ctx.strokeStyle = colors[i];
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let pen = false;
    values.forEach((v, x) => {
      if (v == null) { pen = false; return; }
      const px = (x / Math.max(1, values.length - 1)) * w;
      const py = h - (v / top) * h;
      if (pen) ctx.lineTo(px, py); else ctx.moveTo(px, py);
      pen = true;
    });
    ctx.stroke();
    // A second with calls between two without shows as a dot (a line needs two points).
    ctx.fillStyle = colors[i];
    values.forEach((v, x) => {
      if (v != null) ctx.fillRect((x / Math.max(1, values.length - 1)) * w - 1.5, h - (v / top) * h - 1.5, 3, 3);
    });
  });
}

async function refreshHealth() {
  const { points } = await api("GET", "/console/health?last_s=300");
  const calls = points.map((p) => p.calls);
  const errors = points.map((p) => p.errors);
  chart($("chart-calls"), [calls], ["#1f5fbf"]);
  chart($("chart-latency"), [points.map((p) => p.p50_ms), points.map((p) => p.p99_ms)], ["#1f8a4c", "#b7791f"]);
  chart($("chart-errors"), [errors], ["#c0392b"]);
  const total = calls.reduce((a, b) => a + b, 0);
  const failed = errors.reduce((a, b) => a + b, 0);
  const p99s = points.map((p) => p.p99_ms).filter((v) => v != null);
  $("health-calls").textContent = `${total} calls in the last 5 minutes`;
  $("health-errors").textContent = `${failed} errors in the last 5 minutes`;
  $("health-latency").textContent = p99s.length ? `worst p99 ${Math.round(Math.max(...p99s))} ms` : "no calls";
}

// --- wiring --------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
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
