// The overview: versions, bindings and workers, refreshed while the page is shown.

import { activate, deactivate, rollback, switchTo, uninstall } from "./actions.js";
import { $, api, el, every, formatBytes, formatSeconds, formatWhen, state } from "./core.js";

export function enterOverview() { every(1500, refreshOverview); }

// An action or an install changed something: show it now rather than at the next refresh.
document.addEventListener("console:changed", () => {
  if (state.page === "overview") refreshOverview().catch((err) => console.warn(err));
});

let sizes = {};
let sizesAt = 0;

export async function refreshOverview() {
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
