// Images with rectangles drawn over them (SVG, so each rectangle is an element of the page).

import { el } from "./core.js";

const SVG = "http://www.w3.org/2000/svg";

export function overlay(box, src, width, height, rects, extraRects) {
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

export function imageSize(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve([img.naturalWidth, img.naturalHeight]);
    img.onerror = () => reject(new Error("the browser cannot show this image (PNG or JPEG only)"));
    img.src = url;
  });
}
