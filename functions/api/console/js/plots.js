// Small SVG line charts: linear or log x, nice ticks, gaps for missing values, one <path> per series.

const NS = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, parent = null) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

function linTicks(lo, hi, count) {
  const step = niceStep(hi - lo, count);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

function logTicks(lo, hi) {
  const out = [];
  for (let d = 10 ** Math.floor(Math.log10(lo)); d <= hi; d *= 10) {
    for (const m of [1, 2, 5]) { const v = m * d; if (v >= lo && v <= hi) out.push(v); }
  }
  return out;
}

export const fmtTime = (s) => {
  s = Math.max(0, s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  return h ? `${h}:${String(m).padStart(2, "0")}:${String(sec).padStart(2, "0")}` : `${m}:${String(sec).padStart(2, "0")}`;
};
export const fmtHz = (v) => (v >= 1000 ? `${+(v / 1000).toFixed(1)}k` : `${+v.toFixed(0)}`);
const fmtNum = (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : +v.toFixed(2) + "");

/**
 * Draw a chart into `figure` (a <figure>): replaces its content.
 * spec: {title, xLabel, yLabel, xLog, xTime, xFmt, series: [{label, xs, ys, cls, dash}], yMin, yMax,
 *        yFloor (clip the axis there), yZero (axis includes 0), ySpanMin (smallest y span), desc}
 * Returns the number of points drawn.
 */
export function lineChart(figure, spec) {
  figure.textContent = "";
  figure.classList.add("plot");
  const cap = document.createElement("figcaption");
  cap.textContent = spec.title;
  figure.appendChild(cap);
  const series = (spec.series || []).filter((s) => s.ys && s.ys.length);
  const W = Math.max(260, Math.round(spec.width || figure.clientWidth || 560));
  const H = Math.round(Math.min(300, Math.max(190, W * 0.5)));
  const m = { l: 46, r: 10, t: 8, b: 36 };
  const pw = W - m.l - m.r, ph = H - m.t - m.b;

  let xlo = Infinity, xhi = -Infinity, ylo = Infinity, yhi = -Infinity, npts = 0;
  for (const s of series) {
    const n = Math.min(s.xs.length, s.ys.length);
    for (let i = 0; i < n; i++) {
      const x = s.xs[i], y = s.ys[i];
      if (y == null || !Number.isFinite(y) || !Number.isFinite(x) || (spec.xLog && x <= 0)) continue;
      if (x < xlo) xlo = x; if (x > xhi) xhi = x;
      if (y < ylo) ylo = y; if (y > yhi) yhi = y;
      npts++;
    }
  }
  if (!npts) {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = spec.emptyText || "Nothing to show for this recording.";
    figure.appendChild(p);
    return 0;
  }
  if (spec.yMin != null) ylo = Math.max(ylo, spec.yMin);
  if (spec.yMax != null) yhi = Math.min(yhi, spec.yMax);
  if (spec.yFloor != null) ylo = Math.max(ylo, spec.yFloor);
  if (spec.yZero) { ylo = Math.min(ylo, 0); yhi = Math.max(yhi, 0); }
  if (spec.ySpanMin && yhi - ylo < spec.ySpanMin) {
    if (spec.yZero && ylo >= 0) yhi = ylo + spec.ySpanMin;
    else { const c = (ylo + yhi) / 2; ylo = c - spec.ySpanMin / 2; yhi = c + spec.ySpanMin / 2; }
  }
  if (yhi - ylo < 1e-6) { ylo -= 1; yhi += 1; }
  const pad = (yhi - ylo) * 0.05; ylo -= pad; yhi += pad;
  if (xhi - xlo < 1e-12) { xhi = xlo + 1; }

  const lx = spec.xLog ? Math.log10 : (v) => v;
  const X0 = lx(xlo), X1 = lx(xhi);
  const sx = (x) => m.l + ((lx(x) - X0) / (X1 - X0)) * pw;
  const sy = (y) => m.t + (1 - (y - ylo) / (yhi - ylo)) * ph;

  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": spec.desc || spec.title });
  el("title", {}, svg).textContent = spec.desc || spec.title;
  const grid = el("g", { class: "grid" }, svg);
  const axis = el("g", { class: "axis" }, svg);
  const xf = spec.xFmt || (spec.xTime ? fmtTime : spec.xLog ? fmtHz : fmtNum);
  let xt = spec.xLog ? logTicks(xlo, xhi) : linTicks(xlo, xhi, Math.max(3, Math.floor(pw / 80)));
  if (spec.xLog && xt.length > pw / 34) xt = xt.filter((v) => String(v)[0] !== "2");
  if (spec.xTime) {
    const span = xhi - xlo, cands = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
    const step = cands.find((c) => span / c <= Math.max(3, Math.floor(pw / 80))) || 7200;
    xt = []; for (let v = Math.ceil(xlo / step) * step; v <= xhi; v += step) xt.push(v);
  }
  for (const v of xt) {
    const x = sx(v);
    el("line", { x1: x, x2: x, y1: m.t, y2: m.t + ph }, grid);
    const t = el("text", { x, y: m.t + ph + 14, "text-anchor": "middle" }, axis);
    t.textContent = xf(v);
  }
  for (const v of linTicks(ylo, yhi, Math.max(3, Math.floor(ph / 40)))) {
    const y = sy(v);
    el("line", { x1: m.l, x2: m.l + pw, y1: y, y2: y }, grid);
    const t = el("text", { x: m.l - 5, y: y + 4, "text-anchor": "end" }, axis);
    t.textContent = fmtNum(v);
  }
  el("line", { x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph }, axis);
  el("line", { x1: m.l, x2: m.l, y1: m.t, y2: m.t + ph }, axis);
  const xl = el("text", { x: m.l + pw / 2, y: H - 4, "text-anchor": "middle" }, axis);
  xl.textContent = spec.xLabel || "";
  const yl = el("text", { x: 11, y: m.t + ph / 2, "text-anchor": "middle", transform: `rotate(-90 11 ${m.t + ph / 2})` }, axis);
  yl.textContent = spec.yLabel || "";

  el("clipPath", { id: `clip-${figure.id}` }, svg).appendChild(el("rect", { x: m.l, y: m.t, width: pw, height: ph }));
  const body = el("g", { "clip-path": `url(#clip-${figure.id})` }, svg);
  series.forEach((s, k) => {
    const n = Math.min(s.xs.length, s.ys.length);
    const parts = [];
    let pen = false;
    for (let i = 0; i < n; i++) {
      const x = s.xs[i], y = s.ys[i];
      if (y == null || !Number.isFinite(y) || (spec.xLog && x <= 0)) { pen = false; continue; }
      parts.push(`${pen ? "L" : "M"}${sx(x).toFixed(1)} ${sy(Math.max(ylo, Math.min(yhi, y))).toFixed(1)}`);
      pen = true;
    }
    if (!parts.length) return;
    el("path", { d: parts.join(""), class: `series ${s.cls || `c${k}`}${s.dash ? " dash" : ""}`, "data-label": s.label }, body);
  });
  figure.appendChild(svg);

  const ul = document.createElement("ul");
  ul.className = "legend";
  series.forEach((s, k) => {
    const li = document.createElement("li");
    const i = document.createElement("i");
    i.className = s.cls || `c${k}`;
    li.append(i, s.label);
    ul.appendChild(li);
  });
  figure.appendChild(ul);
  return npts;
}
