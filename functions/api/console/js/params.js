// The matched processing settings (style_params) in words a musician reads: one line per move.

const EQ_TYPES = { peaking: "Bell", low_shelf: "Low shelf", high_shelf: "High shelf", high_pass: "High-pass",
  low_pass: "Low-pass" };
const hz = (f) => (f >= 1000 ? `${+(f / 1000).toFixed(f >= 10000 ? 1 : 2)} kHz` : `${Math.round(f)} Hz`);
const num = (v, d = 1) => (typeof v === "number" && Number.isFinite(v) ? v.toFixed(d) : "—");
const signed = (v, d = 1) => (typeof v === "number" ? `${v > 0 ? "+" : ""}${v.toFixed(d)}` : "—");

// the notes are keyed by the processors' names
const NOTE_WORDS = { eq: "EQ", lufs: "Loudness", limiter: "Limiter", stereo: "Stereo width", compressor: "Compressor",
  reverb: "Reverb", pitch: "Pitch", reference: "Reference" };
const noteLabel = (k) => NOTE_WORDS[k] || `${k[0].toUpperCase()}${k.slice(1).replace(/_/g, " ")}`;

/** [{title, lines[]}] for a style_params object (missing block = off). */
export function describeParams(p) {
  if (!p || typeof p !== "object") return [];
  const out = [];
  if (Array.isArray(p.eq) && p.eq.length) {
    const bands = [...p.eq].sort((a, b) => a.f_hz - b.f_hz);
    out.push({ title: `EQ (${bands.length} band${bands.length > 1 ? "s" : ""})`, lines: bands.map((b) => {
      const t = EQ_TYPES[b.type] || b.type;
      const cut = b.type === "high_pass" || b.type === "low_pass";
      return `${t} at ${hz(b.f_hz)}${cut ? "" : ` ${signed(b.gain_db)} dB`}, Q ${num(b.q, 2)}`;
    }) });
  }
  if (p.compressor) {
    const c = p.compressor;
    out.push({ title: "Compressor", lines: [
      `Threshold ${num(c.threshold_db)} dB, ratio ${num(c.ratio)}:1`,
      `Attack ${num(c.attack_ms)} ms, release ${num(c.release_ms, 0)} ms`,
      `Make-up ${signed(c.makeup_db)} dB${c.knee_db != null ? `, knee ${num(c.knee_db)} dB` : ""}`,
    ] });
  }
  if (p.reverb) {
    const r = p.reverb;
    out.push({ title: "Reverb", lines: [`Mix ${num((r.mix ?? 0) * 100, 0)} %, pre-delay ${num(r.pre_delay_ms, 0)} ms`,
      r.ir_key ? `Space: ${String(r.ir_key).replace(/^ir\//, "").replace(/[_/]/g, " ")}` : ""].filter(Boolean) });
  }
  if (p.pitch && p.pitch.semitones) {
    out.push({ title: "Pitch", lines: [`${signed(p.pitch.semitones, 0)} semitone${Math.abs(p.pitch.semitones) === 1 ? "" : "s"}`] });
  }
  if (p.stereo) {
    const w = p.stereo.width;
    out.push({ title: "Stereo width", lines: [`${num(w * 100, 0)} % ${w > 1.001 ? "(wider)" : w < 0.999 ? "(narrower)" : "(unchanged)"}`] });
  }
  if (p.lufs) {
    out.push({ title: "Loudness", lines: [`Target ${num(p.lufs.target_db)} LUFS${p.lufs.gain_db != null ? `, gain ${signed(p.lufs.gain_db)} dB` : ""}`] });
  }
  if (p.limiter) {
    const l = p.limiter;
    out.push({ title: "Limiter", lines: [`Ceiling ${num(l.tp_db)} dBTP, look-ahead ${num(l.lookahead_ms)} ms, release ${num(l.release_ms, 0)} ms`] });
  }
  if (p.notes && typeof p.notes === "object") {
    const lines = Object.entries(p.notes).filter(([, v]) => v).map(([k, v]) => `${noteLabel(k)}: ${v}`);
    if (lines.length) out.push({ title: "Notes", lines });
  }
  return out;
}

/** Fill `el` with the description (a definition list). */
export function renderParams(el, params) {
  el.textContent = "";
  const groups = describeParams(params);
  if (!groups.length) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = "No settings recorded for this job.";
    el.appendChild(p);
    return;
  }
  const dl = document.createElement("dl");
  dl.className = "params";
  for (const g of groups) {
    const dt = document.createElement("dt");
    dt.textContent = g.title;
    dl.appendChild(dt);
    for (const line of g.lines) {
      const dd = document.createElement("dd");
      dd.textContent = line;
      dl.appendChild(dd);
    }
  }
  el.appendChild(dl);
}
