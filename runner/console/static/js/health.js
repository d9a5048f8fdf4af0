// Health: calls, latency p50/p99 and errors per second, as small charts.

import { $, api, every } from "./core.js";

export function enterHealth() { every(2000, refreshHealth); }

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
