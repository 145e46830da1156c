// Map the service's visualisation JSON (engine/viz.py) to charts. Tolerant of extra or nested
// fields: every numeric array with as many points as the x axis becomes a series.

import { lineChart } from "./plots.js";

const UNIT_SUFFIX = /_(db|dbfs|hz|lufs|lu|s|ms|dbtp)$/;

function isNumArray(a) {
  return Array.isArray(a) && a.length > 0 && a.every((v) => v === null || typeof v === "number");
}

function flatten(obj, prefix = "", out = {}) {
  if (!obj || typeof obj !== "object" || Array.isArray(obj)) return out;
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}_${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out);
    else out[key] = v;
  }
  return out;
}

function pretty(key, fallback) {
  if (UNIT_SUFFIX.test(`_${key}`) && fallback) return fallback;
  const words = key.replace(UNIT_SUFFIX, "").split("_").filter((w) => w && !["series", "values", "y"].includes(w));
  const s = words.join(" ");
  return s ? s[0].toUpperCase() + s.slice(1) : key;
}

function classFor(key, k) {
  if (/target|original|input/.test(key)) return "c0";
  if (/reference|ref\b/.test(key)) return "c1";
  if (/result|processed|output/.test(key)) return "c2";
  return `c${3 + (k % 3)}`;
}

/** Build {xs, series[]} from a viz block; xKind is "freq" or "time". */
export function seriesOf(block, { gapAtOrBelow = null, label = null } = {}) {
  const flat = flatten(block);
  let xs = null, xKind = "time", xKey = null;
  const freqKey = ["freqs_hz", "band_centers_hz", "centers_hz", "f_hz", "bands_hz"].find((k) => isNumArray(flat[k]));
  const edges = isNumArray(flat.band_edges_hz) ? flat.band_edges_hz : null;
  const timeKey = ["times_s", "t_s", "time_s"].find((k) => isNumArray(flat[k]));
  const arrays = Object.entries(flat).filter(([k, v]) => isNumArray(v) && !/voiced|mask|edges/.test(k));
  if (freqKey) { xs = flat[freqKey]; xKind = "freq"; xKey = freqKey; }
  else if (timeKey) { xs = flat[timeKey]; xKey = timeKey; }
  const ys = arrays.filter(([k]) => k !== xKey && k !== freqKey && k !== timeKey);
  if (!xs && edges) {
    const n = edges.length - 1;
    if (ys.some(([, v]) => v.length === n)) {
      xs = edges.slice(0, n).map((lo, i) => Math.sqrt(Math.max(lo, 1) * edges[i + 1]));
      xKind = "freq";
    }
  }
  if (!xs) {
    const hopKey = Object.keys(flat).find((k) => /hop_s$/.test(k) && typeof flat[k] === "number");
    const hop = hopKey ? flat[hopKey] : 1;
    const n = Math.max(0, ...ys.map(([, v]) => v.length));
    xs = Array.from({ length: n }, (_, i) => i * hop);
    xKind = hopKey ? "time" : "index";
  }
  const voiced = Object.entries(flat).filter(([k, v]) => /voiced/.test(k) && Array.isArray(v));
  const series = ys.filter(([, v]) => v.length === xs.length).map(([k, v], i) => {
    let vals = v;
    const mask = voiced.find(([vk]) => vk.replace(/_?voiced/, "") === k.replace(UNIT_SUFFIX, "").replace(/_?f0/, ""));
    if (mask) vals = vals.map((y, j) => (mask[1][j] ? y : null));
    if (gapAtOrBelow != null) vals = vals.map((y) => (y == null || y <= gapAtOrBelow ? null : y));
    return { label: pretty(k, label), xs, ys: vals, cls: classFor(k, i), dash: /side/.test(k) };
  });
  return { xs, xKind, series };
}

const PLOTS = [
  { key: "spectrum", title: "Long-term spectrum", yLabel: "Level (dB)", wide: true, yFloor: -140,
    desc: "Average level per frequency of your original, the reference and the result." },
  { key: "lufs_trajectory", title: "Loudness over time", yLabel: "Short-term loudness (LUFS)", yFloor: -70, ySpanMin: 6,
    desc: "Short-term loudness over time of your original and of the result." },
  { key: "gain_reduction", title: "Limiter and compressor gain reduction", yLabel: "Gain reduction (dB)",
    label: "Gain reduction", yZero: true, ySpanMin: 3,
    desc: "How much the limiter and compressor turned the level down over time." },
  { key: "mid_side", title: "Mid / side energy", yLabel: "Energy (dB)", yFloor: -140,
    desc: "Energy of the centre (mid) and the sides of the stereo image." },
  { key: "f0", title: "Pitch (F0)", yLabel: "Fundamental (Hz)", gap: 0,
    desc: "The detected pitch of the main voice or instrument over time; gaps are where no pitch was found." },
];

/** Render every plot of `viz` into `container`; returns {plots, points, ms}. */
export function renderViz(container, viz) {
  const t0 = performance.now();
  container.textContent = "";
  let plots = 0, points = 0;
  const figs = PLOTS.map((p) => {
    const fig = document.createElement("figure");
    fig.id = `plot-${p.key}`;
    fig.dataset.plot = p.key;
    fig.className = p.wide ? "plot wide" : "plot";
    container.appendChild(fig);
    return fig;
  });
  const widths = figs.map((f) => f.clientWidth); // one layout for all, not one per plot
  for (const [i, p] of PLOTS.entries()) {
    const block = viz && viz[p.key];
    const fig = figs[i];
    if (!block) {
      lineChart(fig, { title: p.title, series: [], emptyText: "Not measured for this job." });
      continue;
    }
    const { xKind, series } = seriesOf(block, { gapAtOrBelow: p.gap ?? null, label: p.label });
    const n = lineChart(fig, {
      title: p.title, desc: p.desc, yLabel: p.yLabel, yFloor: p.yFloor, series, width: widths[i],
      yZero: p.yZero, ySpanMin: p.ySpanMin ?? 2,
      xLog: xKind === "freq", xTime: xKind === "time",
      xLabel: xKind === "freq" ? "Frequency (Hz)" : xKind === "time" ? "Time (m:s)" : "",
      emptyText: p.key === "f0" ? "No steady pitch found (normal for full mixes and drums)." : undefined,
    });
    if (n) plots++;
    points += n;
  }
  return { plots, points, ms: performance.now() - t0 };
}
