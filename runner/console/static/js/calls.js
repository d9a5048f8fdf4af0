// Recent calls: thumbnails with their rectangles, status, latency.

import { $, api, el, every, state } from "./core.js";
import { overlay } from "./overlay.js";

export function enterCalls() { every(2000, refreshCalls); }

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
