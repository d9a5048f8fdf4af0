// Actions on versions and bindings, each confirmed with what changes (before -> after).

import { $, api, state } from "./core.js";

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
    document.dispatchEvent(new Event("console:changed"));
    return answer;
  } catch (err) {
    out.className = "error";
    out.textContent = `${what} failed: ${err.plain || err.message}`;
    return null;
  }
}

export async function activate(v) {
  const pids = (v.supported_pids || []).filter((pid) => !state.active[pid]
    || state.active[pid].name !== v.name || state.active[pid].version !== v.version);
  const chosen = await confirmAction(`Activate ${v.name} ${v.version}`,
    describe(pids.length ? pids : v.supported_pids || [], `${v.name} ${v.version}`)
      + ". Workers start if they are not running.", pids.length ? pids : v.supported_pids || []);
  if (!chosen || !chosen.length) return;
  await runAction(`Activate ${v.name} ${v.version} for ${chosen.join(", ")}`,
    () => api("POST", "/algorithms/activate", { name: v.name, version: v.version, pids: chosen }));
}

export async function switchTo(v, pids) {
  const chosen = await confirmAction(`Switch to ${v.name} ${v.version}`,
    `${describe(pids, v.version)}. Calls move once the new version is ready.`, pids);
  if (!chosen || !chosen.length) return;
  await runAction(`Switch ${chosen.join(", ")} to ${v.version}`,
    () => api("POST", "/algorithms/switch", { name: v.name, version: v.version, pids: chosen }));
}

export async function rollback(pid, b) {
  const ok = await confirmAction(`Roll back ${pid}`,
    `${pid}: ${b.name} ${b.version} → the version it served before`);
  if (!ok) return;
  await runAction(`Roll back ${pid}`, () => api("POST", "/algorithms/rollback", { pids: [pid] }));
}

export async function deactivate(pid, b) {
  const ok = await confirmAction(`Deactivate ${pid}`, `${pid}: ${b.name} ${b.version} → none (calls for ${pid} fail)`);
  if (!ok) return;
  await runAction(`Deactivate ${pid}`, () => api("POST", "/algorithms/deactivate", { pids: [pid] }));
}

export async function uninstall(v, bound) {
  const warning = bound.length ? ` It serves ${bound.join(", ")}: those products lose it.` : "";
  const ok = await confirmAction(`Uninstall ${v.name} ${v.version}`,
    `${v.name} ${v.version}: ${v.state} → removed.${warning}`);
  if (!ok) return;
  const force = bound.length ? "?force=true" : "";
  await runAction(`Uninstall ${v.name} ${v.version}`,
    () => api("DELETE", `/algorithms/${encodeURIComponent(v.name)}/${encodeURIComponent(v.version)}${force}`));
}
