// A version's worker log, following live (server-sent events), filtered on the daemon.

import { $, api, el, state } from "./core.js";

export async function enterLogs() {
  const select = $("log-version");
  const versions = await api("GET", "/algorithms");
  const keep = select.value;
  select.replaceChildren(...versions.map((v) => el("option", { value: `${v.name}/${v.version}` },
    `${v.name} ${v.version}`)));
  if (keep && versions.some((v) => `${v.name}/${v.version}` === keep)) select.value = keep;
  followLogs();
}

export function closeLogs() {
  if (state.logSource) state.logSource.close();
  state.logSource = null;
  state.logKey = null;
  delete $("log-state").dataset.following;
}

export function followLogs() {
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
  source.onopen = () => {
    $("log-state").textContent = "following";
    // Which version and filter this stream follows: "following" alone cannot tell a stream that is
    // about to be replaced (the filter box waits for typing to pause) from its replacement.
    $("log-state").dataset.following = key;
  };
}
