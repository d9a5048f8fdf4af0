// Installing a package: upload (drop or file picker), then the operation's stages until it ends.

import { $, api, ApiError, el, state } from "./core.js";

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
    document.dispatchEvent(new Event("console:changed"));
  } catch (err) {
    result.className = "error";
    result.textContent = `Install failed: ${err.plain || err.message}`;
  }
}

export function wireInstall() {
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
