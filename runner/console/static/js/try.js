// Try it: one call with a chosen image; the image is shown with the rectangles drawn over it.

import { $, api, el } from "./core.js";
import { imageSize, overlay } from "./overlay.js";

export async function enterTry() {
  const select = $("try-pid");
  const active = await api("GET", "/algorithms/active");
  const keep = select.value;
  select.replaceChildren(...Object.keys(active).sort().map((pid) =>
    el("option", { value: pid }, `${pid} (${active[pid].name} ${active[pid].version})`)));
  if (keep && active[keep]) select.value = keep;
}

export async function runTry() {
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
