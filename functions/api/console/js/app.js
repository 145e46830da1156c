// tonematch console: hash routes, log in, uploads, job options, live job status, results, jobs, presets.

import { Api, SessionExpired } from "./api.js";
import { fmtBytes, generalMessage, jobFailureMessage, STEP_WORDS, uploadMessage } from "./messages.js";
import { AbPlayer } from "./player.js";
import { renderParams } from "./params.js";
import { renderViz } from "./viz.js";
import { forgetAllResumes, hasResume, uploadAudio } from "./upload.js";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
// The app's root is two folders above this module ({root}/console/js/app.js), wherever it is mounted.
const api = new Api(new URL("../../", import.meta.url).href.replace(/\/$/, ""));
window.tonematch = { api, timings: {} };

// ---------- shell ----------
const live = $("#live");
function say(text) { live.textContent = ""; setTimeout(() => { live.textContent = text; }, 30); }
function banner(text, kind = "info") {
  const b = $("#banner");
  if (!text) { b.hidden = true; b.textContent = ""; return; }
  b.textContent = text;
  b.className = `banner${kind === "err" ? " err" : ""}`;
  b.hidden = false;
}
function showError(el, text) { el.textContent = text || ""; el.hidden = !text; }
function fail(err, el) {
  if (err instanceof SessionExpired) return; // handled by onExpired
  const text = generalMessage(err);
  if (el) showError(el, text); else banner(text, "err");
}
const listOf = (r, ...keys) => (Array.isArray(r) ? r : keys.map((k) => r && r[k]).find(Array.isArray) || []);
const fmtDate = (s) => {
  if (!s) return "";
  const d = new Date(typeof s === "number" ? s * 1000 : s);
  return Number.isNaN(d.getTime()) ? String(s) : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
};

let leaveView = () => {};
let pendingRoute = null;

api.onExpired = () => {
  pendingRoute = location.hash && !location.hash.startsWith("#/login") ? location.hash : pendingRoute;
  banner("Your session has expired. Log in again to carry on — your uploads and jobs are kept.");
  if (location.hash !== "#/login") location.hash = "#/login"; else route();
};

function setView(name) {
  for (const v of $$(".view")) v.hidden = v.id !== `view-${name}`;
  $("#nav").hidden = name === "login";
  for (const a of $$("#nav a")) {
    if (a.dataset.nav === name || (name === "job" && a.dataset.nav === "jobs")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

function focusHeading(name) {
  const h = $(`#view-${name} h1`);
  if (h) { h.setAttribute("tabindex", "-1"); h.focus({ preventScroll: true }); }
}

async function route() {
  leaveView();
  leaveView = () => {};
  // an error belongs to the screen it was about ("not found", a failed load); the session notes
  // ("expired", "logged out") are for the log-in screen they lead to and stay
  if ($("#banner").classList.contains("err")) banner("");
  const hash = location.hash || "#/new";
  const parts = hash.slice(2).split("/");
  if (!api.loggedIn && parts[0] !== "login") {
    pendingRoute = hash;
    location.hash = "#/login";
    return;
  }
  window.scrollTo(0, 0);
  switch (parts[0]) {
    case "login": setView("login"); $("#login-email").focus(); break;
    case "jobs":
      if (parts[1]) { setView("job"); showJob(decodeURIComponent(parts[1])); }
      else { setView("jobs"); delete $("#view-jobs").dataset.loaded; loadJobs(); focusHeading("jobs"); }
      break;
    case "presets": setView("presets"); loadPresets(); focusHeading("presets"); break;
    default: setView("new"); loadOptions(); focusHeading("new");
  }
}
window.addEventListener("hashchange", route);

// ---------- log in / out ----------
$("#login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const email = $("#login-email").value.trim(), password = $("#login-password").value;
  const err = $("#login-error");
  if (!email || !password) { showError(err, "Enter your email and password."); return; }
  showError(err, "");
  const btn = e.submitter || $("#login-form button");
  btn.disabled = true;
  try {
    await api.login(email, password);
    $("#login-password").value = "";
    banner("");
    location.hash = pendingRoute && pendingRoute !== "#/login" ? pendingRoute : "#/new";
    pendingRoute = null;
  } catch (ex) {
    showError(err, ex.code === "UNAUTHORIZED" || ex.status === 401
      ? "That email and password don't match an account. Check them and try again."
      : generalMessage(ex));
  } finally {
    btn.disabled = false;
  }
});

$("#logout").addEventListener("click", () => {
  api.clearTokens();
  for (const k of Object.keys(sessionStorage)) if (k.startsWith("tm.slot.")) sessionStorage.removeItem(k);
  forgetAllResumes();
  slots.reference.reset(); slots.target.reset(); slots.apply.reset();
  banner("You're logged out.");
  location.hash = "#/login";
});

// ---------- file names of uploads (the service keeps only keys) ----------
const NAMES = "tm.names";
function rememberName(key, name) {
  try {
    const m = JSON.parse(localStorage.getItem(NAMES) || "{}");
    m[key] = name;
    const keys = Object.keys(m);
    for (const k of keys.slice(0, Math.max(0, keys.length - 300))) delete m[k];
    localStorage.setItem(NAMES, JSON.stringify(m));
  } catch { /* only a convenience */ }
}
function nameOf(key) {
  if (!key) return "";
  try { return JSON.parse(localStorage.getItem(NAMES) || "{}")[key] || ""; } catch { return ""; }
}
/** "my-mix.wav matched to reference.wav" / "verse.wav with a preset" from a job's keys. */
function jobWords(j) {
  const t = nameOf(j.tgt_key) || "Your recording";
  if (j.ref_key) { const r = nameOf(j.ref_key); return r ? `${t} → ${r}` : t; }
  return j.preset_id ? `${t} (preset)` : t;
}

// ---------- upload slots ----------
class UploadSlot {
  constructor(root, role, label, onChange, otherName) {
    this.root = root;
    this.role = role;
    this.label = label;
    this.onChange = onChange;
    this.otherName = otherName;
    this.input = $("input[type=file]", root);
    this.prog = $(".progress", root);
    this.bar = $(".bar", root);
    this.pctEl = $(".pct", root);
    this.msg = $(".upmsg", root);
    this.resumeBtn = $(".resume", root);
    this.cancelBtn = $(".cancel", root);
    this.busy = false;
    this.dropped = false;
    this.file = null;
    this.ctrl = null;
    this.kept = JSON.parse(sessionStorage.getItem(`tm.slot.${role}`) || "null");
    this.input.addEventListener("change", () => { if (this.input.files[0]) this.start(this.input.files[0]); });
    this.resumeBtn.addEventListener("click", () => this.file && this.start(this.file));
    this.cancelBtn.addEventListener("click", () => this.ctrl && this.ctrl.abort());
    this.showKept();
  }

  get key() { return this.kept && this.kept.key; }

  /** The service refused the kept upload: forget it and say why. */
  fail(text) {
    this.kept = null;
    sessionStorage.removeItem(`tm.slot.${this.role}`);
    this.root.dataset.state = "error";
    this.msg.className = "upmsg err";
    this.msg.textContent = text;
    this.prog.hidden = true;
    this.input.value = "";
    this.onChange();
  }

  /** Forget the slot (log-out): an upload under way stops, nothing is left to resume. */
  reset() {
    if (this.busy && this.ctrl) { this.dropped = true; this.ctrl.abort(); }
    this.kept = null; this.file = null;
    delete this.root.dataset.state;
    this.msg.textContent = ""; this.msg.className = "upmsg"; this.prog.hidden = true; this.resumeBtn.hidden = true;
    this.input.value = "";
    this.onChange();
  }

  showKept() {
    if (this.kept) { this.msg.textContent = `✓ ${this.kept.name} uploaded (${fmtBytes(this.kept.size)}).`; this.msg.className = "upmsg ok"; }
  }

  setPct(f) {
    const p = Math.round(f * 100);
    this.bar.firstElementChild.style.width = `${p}%`;
    this.bar.setAttribute("aria-valuenow", String(p));
    this.pctEl.textContent = `${p}%`;
    this.pct = p;
  }

  async start(file) {
    if (this.busy) return;
    this.busy = true;
    this.file = file;
    this.ctrl = new AbortController();
    this.resumeBtn.hidden = true;
    this.cancelBtn.hidden = false;
    this.prog.hidden = false;
    this.setPct(0);
    this.msg.className = "upmsg";
    this.msg.textContent = hasResume(file) ? `Resuming ${file.name} where it stopped…`
      : `Uploading ${file.name} (${fmtBytes(file.size)})…`;
    this.root.dataset.state = "uploading";
    this.onChange();
    try {
      const r = await uploadAudio(api, file, { signal: this.ctrl.signal, onProgress: (f) => this.setPct(f) });
      if (this.dropped) { this.dropped = false; return; } // finished after a log-out: not this user's any more
      this.kept = { key: r.key, name: file.name, size: file.size };
      rememberName(r.key, file.name);
      sessionStorage.setItem(`tm.slot.${this.role}`, JSON.stringify(this.kept));
      this.showKept();
      this.root.dataset.state = "done";
      say(`${this.label} uploaded.`);
    } catch (err) {
      if (this.dropped) { this.dropped = false; return; } // reset() stopped it and cleared the slot
      this.root.dataset.state = "error";
      // After a cancel or an expired session the input still holds the file: empty it, or choosing
      // the same file again would not fire a change.
      if (err instanceof SessionExpired) {
        this.msg.className = "upmsg err";
        this.msg.textContent = "Your session expired during the upload. Log in again, then choose the file again."
          + (this.kept ? ` Until then your earlier upload (${this.kept.name}) is used.` : "");
        this.prog.hidden = true;
        this.input.value = "";
      } else if (err.code === "ABORTED") {
        this.msg.className = "upmsg";
        this.msg.textContent = "Upload cancelled." + (this.kept ? ` Still using ${this.kept.name}.` : "");
        this.prog.hidden = true;
        this.input.value = "";
      } else {
        const other = this.otherName && this.otherName() ? this.otherName() : null;
        let text = uploadMessage(err, { pct: this.pct, other });
        if (this.kept) text += ` Your earlier upload (${this.kept.name}) is still used.`;
        this.msg.className = "upmsg err";
        this.msg.textContent = text;
        if (err.code === "NETWORK" || err.code === "EXPIRED_URL" || hasResume(file)) this.resumeBtn.hidden = false;
        if (err.code === "NOT_AUDIO" || err.code === "INVALID_INPUT") this.prog.hidden = true;
        if (this.resumeBtn.hidden) this.input.value = ""; // nothing to resume: let the same file be chosen again
      }
    } finally {
      this.busy = false;
      this.cancelBtn.hidden = true;
      this.onChange();
    }
  }
}

const newForm = $("#new-form");
function updateStart() {
  const ok = slots.reference.key && slots.target.key && !slots.reference.busy && !slots.target.busy;
  $("#start-btn").disabled = !ok;
  // a slot whose new file failed still holds its earlier upload: say that Start uses that one
  const earlier = [slots.reference, slots.target].filter((s) => s.key && s.root.dataset.state === "error")
    .map((s) => `your earlier ${s.role} (${s.kept.name})`);
  $("#start-hint").textContent = ok ? (earlier.length ? `Ready to start with ${earlier.join(" and ")}.` : "Ready when you are.")
    : slots.reference.busy || slots.target.busy ? "Waiting for the upload to finish…" : "Upload a reference and a target to start.";
}
const slots = {};
slots.reference = new UploadSlot($("fieldset[data-role=reference]"), "reference", "Reference", updateStart,
  () => slots.target && slots.target.key && "target");
slots.target = new UploadSlot($("fieldset[data-role=target]"), "target", "Target", updateStart,
  () => slots.reference && slots.reference.key && "reference");
let applying = false;
slots.apply = new UploadSlot($("#apply-form"), "apply", "Recording", () => {
  $("#apply-btn").disabled = !slots.apply.key || slots.apply.busy || applying;
});
updateStart();

// ---------- options ----------
// Mirrors engine/options.py. Fills what GET /options leaves out (ranges, units, choices, words);
// whatever the service says wins.
const FALLBACK_OPTIONS = {
  target_lufs: { type: "number", default: null, min: -40, max: -5, step: 0.1, unit: "LUFS", label: "Target loudness", description: "Default: the reference's loudness." },
  ceiling_dbtp: { type: "number", default: -1.0, min: -9, max: 0, step: 0.1, unit: "dBTP", label: "True-peak ceiling" },
  intensity: { type: "number", default: 1, min: 0, max: 1, step: 0.05, unit: "", label: "Intensity", description: "How much of the matched correction to apply (0 = none, 1 = all)." },
  output_format: { type: "string", default: "wav24", choices: ["wav16", "wav24", "flac"], label: "Output format", description: "WAV 16-bit is dithered." },
  output_sample_rate_hz: { type: "integer", default: null, choices: [44100, 48000, 88200, 96000], unit: "Hz", label: "Output sample rate", description: "Default: the target's." },
  exclude: { type: "array", default: [], choices: ["eq", "stereo", "limiter", "compressor", "reverb", "pitch"], label: "Leave out", description: "Processors to switch off." },
  segment_s: { type: "number", default: 60, min: 10, max: 600, step: 1, unit: "s", label: "Segment length", description: "Long files are processed in parallel pieces of this length." },
};
const NICE = {
  target_lufs: "Target loudness", ceiling_dbtp: "True-peak ceiling", intensity: "Intensity",
  output_format: "Output format", output_sample_rate_hz: "Output sample rate", exclude: "Leave out",
  segment_s: "Segment length",
};
const CHOICE_WORDS = { wav16: "WAV 16-bit", wav24: "WAV 24-bit", flac: "FLAC", eq: "EQ", stereo: "Stereo width",
  lufs: "Loudness", limiter: "Limiter", compressor: "Compressor (B)", reverb: "Reverb (B)", pitch: "Pitch (B)" };
const UNIT_OF = (name) => (name.match(/_(lufs|dbtp|db|hz|ms|s)$/) || [])[1];
const UNIT_WORDS = { lufs: "LUFS", dbtp: "dBTP", db: "dB", hz: "Hz", ms: "ms", s: "s" };

// Sentence case for the service's notes, leaving identifiers such as "wav16" alone.
const capitalise = (s) => (s ? `${/^\w*\d/.test(s) ? s[0] : s[0].toUpperCase()}${s.slice(1)}${/[.!?]$/.test(s) ? "" : "."}` : s);

function normaliseOptions(r) {
  let o = r && (r.options || r.opts || r.properties) ? (r.options || r.opts || r.properties) : r;
  if (Array.isArray(o)) o = Object.fromEntries(o.map((x) => [x.name || x.key, x]));
  const out = {};
  for (const [name, spec] of Object.entries(o || {})) {
    if (!spec || typeof spec !== "object") continue;
    const range = Array.isArray(spec.range) ? spec.range : [];
    out[name] = {
      name,
      type: spec.type || (typeof spec.default === "number" ? "number" : Array.isArray(spec.default) ? "array" : "string"),
      default: spec.default ?? null,
      min: spec.min ?? spec.minimum ?? spec.min_value ?? range[0] ?? null,
      max: spec.max ?? spec.maximum ?? spec.max_value ?? range[1] ?? null,
      step: spec.step ?? null,
      unit: spec.unit ?? spec.units ?? UNIT_WORDS[UNIT_OF(name)] ?? "",
      choices: spec.choices || spec.enum || spec.allowed || spec.values || (spec.items && spec.items.enum) || null,
      label: spec.label || spec.title || NICE[name] || name.replace(/_/g, " "),
      description: capitalise(spec.description || spec.note || spec.help || spec.doc || ""),
      modes: spec.modes || null,
    };
  }
  return out;
}

let optionSpecs = null;
async function loadOptions() {
  if (optionSpecs) return;
  const box = $("#opts");
  let specs;
  const fallback = normaliseOptions(FALLBACK_OPTIONS);
  try {
    specs = normaliseOptions(await api.get("/options"));
    if (!Object.keys(specs).length) throw new Error("empty");
    for (const [name, o] of Object.entries(specs)) {
      const f = fallback[name];
      if (!f) continue;
      for (const k of ["min", "max", "step", "choices", "description"]) if (o[k] == null || o[k] === "") o[k] = f[k];
      if (!o.unit) o.unit = f.unit;
      if (o.label === name.replace(/_/g, " ") || o.label === NICE[name]) o.label = f.label;
      // a null default says nothing about the type
      if (o.type === "string" && typeof o.default !== "string") o.type = f.type;
    }
  } catch (e) {
    if (e instanceof SessionExpired) return;
    specs = fallback;
  }
  optionSpecs = specs;
  box.textContent = "";
  for (const o of Object.values(specs)) box.appendChild(optionField(o));
}

function rangeText(o) {
  const u = o.unit ? ` ${o.unit}` : "";
  const parts = [];
  if (o.min != null && o.max != null) parts.push(`range ${o.min} to ${o.max}${u}`);
  else if (o.min != null) parts.push(`at least ${o.min}${u}`);
  else if (o.max != null) parts.push(`at most ${o.max}${u}`);
  const def = o.default == null || (Array.isArray(o.default) && !o.default.length) ? null
    : Array.isArray(o.default) ? o.default.join(", ") : `${CHOICE_WORDS[o.default] || o.default}${typeof o.default === "number" ? u : ""}`;
  if (def != null) parts.push(`default ${def}`);
  return parts.join("; ");
}

function optionField(o) {
  const wrap = document.createElement("div");
  wrap.className = "opt";
  wrap.dataset.opt = o.name;
  const id = `opt-${o.name}`;
  const hintId = `${id}-hint`;
  const hint = document.createElement("p");
  hint.className = "hint";
  hint.id = hintId;
  // a select offers its choices: a numeric range in the hint would promise values it doesn't have
  hint.textContent = [o.description, rangeText(o.choices ? { ...o, min: null, max: null } : o)].filter(Boolean).join(" · ");
  const isList = /array|list/.test(o.type) || Array.isArray(o.default);
  if (isList && o.choices) {
    const fs = document.createElement("fieldset");
    fs.setAttribute("aria-describedby", hintId);
    const lg = document.createElement("legend");
    lg.textContent = o.label;
    fs.appendChild(lg);
    const checks = document.createElement("div");
    checks.className = "checks";
    for (const c of o.choices) {
      const l = document.createElement("label");
      const cb = document.createElement("input");
      cb.type = "checkbox"; cb.value = c; cb.name = o.name;
      cb.checked = Array.isArray(o.default) && o.default.includes(c);
      l.append(cb, CHOICE_WORDS[c] || c);
      checks.appendChild(l);
    }
    fs.appendChild(checks);
    wrap.append(fs, hint);
    return wrap;
  }
  const lab = document.createElement("label");
  lab.htmlFor = id;
  lab.textContent = o.label;
  if (o.unit) { const u = document.createElement("span"); u.className = "unit"; u.textContent = ` (${o.unit})`; lab.appendChild(u); }
  let input;
  if (o.choices) {
    input = document.createElement("select");
    const d = document.createElement("option");
    d.value = "";
    d.textContent = o.default == null ? "Automatic" : `Default (${CHOICE_WORDS[o.default] || o.default})`;
    input.appendChild(d);
    for (const c of o.choices) {
      const op = document.createElement("option");
      op.value = String(c);
      op.textContent = CHOICE_WORDS[c] || `${c}${o.unit ? ` ${o.unit}` : ""}`;
      input.appendChild(op);
    }
  } else if (o.type === "boolean") {
    input = document.createElement("select");
    for (const [v, t] of [["", `Default (${o.default ? "on" : "off"})`], ["true", "On"], ["false", "Off"]]) {
      const op = document.createElement("option"); op.value = v; op.textContent = t; input.appendChild(op);
    }
  } else {
    input = document.createElement("input");
    input.type = /number|integer|float/.test(o.type) ? "number" : "text";
    if (input.type === "number") {
      input.inputMode = "decimal";
      if (o.min != null) input.min = String(o.min);
      if (o.max != null) input.max = String(o.max);
      input.step = o.step != null ? String(o.step) : o.type === "integer" ? "1" : "any";
    }
    input.placeholder = o.default == null ? "automatic" : `default ${o.default}`;
  }
  input.id = id;
  input.name = o.name;
  input.setAttribute("aria-describedby", hintId);
  wrap.append(lab, input, hint);
  return wrap;
}

/** Read the option fields: only what the user changed; errors name the field and its range. */
function collectOptions() {
  const opts = {};
  const errors = [];
  for (const o of Object.values(optionSpecs || {})) {
    const boxes = $$(`#opts input[type=checkbox][name="${o.name}"]`);
    if (boxes.length) {
      const vals = boxes.filter((b) => b.checked).map((b) => b.value);
      const def = Array.isArray(o.default) ? o.default : [];
      if (vals.join() !== def.join()) opts[o.name] = vals;
      continue;
    }
    const input = $(`#opt-${o.name}`);
    if (!input) continue;
    input.classList.remove("invalid");
    input.removeAttribute("aria-invalid");
    const within = o.min != null && o.max != null ? `between ${o.min} and ${o.max}${o.unit ? ` ${o.unit}` : ""}`
      : rangeText({ ...o, default: null }) || "a number";
    // Typed text that isn't a number ("abc", "--5") reads as "": say so rather than use the default.
    if (input.validity && input.validity.badInput) {
      input.classList.add("invalid");
      input.setAttribute("aria-invalid", "true");
      errors.push(`${o.label} isn't a number we can read. Enter a number ${within.startsWith("between") ? within : `(${within})`}, or leave it empty for the default.`);
      continue;
    }
    const raw = input.value.trim();
    if (raw === "") continue;
    if (o.type === "boolean") { opts[o.name] = raw === "true"; continue; }
    if (input.tagName === "SELECT") {
      opts[o.name] = o.choices.some((c) => typeof c === "number") ? Number(raw) : raw;
      continue;
    }
    if (input.type === "number") {
      const v = Number(raw);
      const bad = !Number.isFinite(v) || (o.min != null && v < o.min) || (o.max != null && v > o.max)
        || (o.type === "integer" && !Number.isInteger(v));
      if (bad) {
        input.classList.add("invalid");
        input.setAttribute("aria-invalid", "true");
        errors.push(`${o.label} must be ${within}${o.type === "integer" ? " (a whole number)" : ""}.`);
        continue;
      }
      opts[o.name] = v;
    } else opts[o.name] = raw;
  }
  return { opts, errors };
}

// A corrected field clears its complaint.
$("#opts").addEventListener("input", (e) => {
  if (e.target.classList.contains("invalid")) {
    e.target.classList.remove("invalid");
    e.target.removeAttribute("aria-invalid");
    if (!$("#opts .invalid")) showError($("#new-error"), "");
  }
});

/** The service looked inside an uploaded file at POST /jobs and can't use it: say which, drop just that one. */
function refuseUpload(slot, ex) {
  const name = slot.kept ? slot.kept.name : "file";
  const why = ex.code === "NOT_FOUND" ? "It's no longer on the server. Upload it again."
    : uploadMessage({ ...ex, message: ex.detail.reason || ex.message });
  slot.fail(`${name} can't be used. ${why}`);
}

newForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const err = $("#new-error");
  showError(err, "");
  const { opts, errors } = collectOptions();
  if (errors.length) {
    $("#opts-box").open = true;
    showError(err, errors.join(" "));
    $("#opts .invalid")?.focus();
    return;
  }
  const mode = $("input[name=mode]:checked", newForm).value;
  const btn = $("#start-btn");
  btn.disabled = true;
  try {
    const body = { mode, ref_key: slots.reference.key, tgt_key: slots.target.key };
    if (Object.keys(opts).length) body.opts = opts;
    const r = await api.post("/jobs", body);
    location.hash = `#/jobs/${encodeURIComponent(r.job_id || r.id)}`;
  } catch (ex) {
    if (!(ex instanceof SessionExpired)) {
      const field = ex.detail && typeof ex.detail === "object" ? ex.detail.field : null;
      const slot = { ref_key: slots.reference, tgt_key: slots.target }[field];
      if (slot && (ex.code === "INVALID_INPUT" || ex.code === "NOT_FOUND")) {
        refuseUpload(slot, ex);
        showError(err, `Your ${slot.role} can't be used — see the message above it.`);
      } else {
        showError(err, generalMessage(ex));
      }
    }
  } finally {
    updateStart();
  }
});

// ---------- one job ----------
const MODE_WORDS = { A: "Master match (A)", B: "Full style match (B)" };
const STEPS = ["PENDING", "ANALYZING", "INVERTING", "RENDERING", "COMPLETED"];
const player = new AbPlayer($("#player"), api);
let currentJobId = null;

/** Which of STEPS a pipeline task (last_step, e.g. "AnalyzeTarget") belongs to. */
function failedStepIndex(step) {
  const s = String(step || "").toLowerCase();
  if (/analy/.test(s)) return 1;
  if (/invert/.test(s)) return 2;
  if (/plan|render|merge|segment/.test(s)) return 3;
  if (/final/.test(s)) return 4;
  return 0;
}

function renderStatus(job) {
  const st = job.status || "PENDING";
  const pct = Math.max(0, Math.min(100, Math.round(job.progress ?? (st === "COMPLETED" ? 100 : 0))));
  const stateEl = $("#job-state");
  stateEl.textContent = STEP_WORDS[st] || st;
  stateEl.className = `state${st === "COMPLETED" ? " done" : st === "FAILED" ? " failed" : ""}`;
  $("#job-pct").textContent = st === "FAILED" ? "" : `${pct}%`;
  const bar = $("#job-bar");
  bar.firstElementChild.style.width = `${pct}%`;
  bar.setAttribute("aria-valuenow", String(pct));
  bar.setAttribute("aria-valuetext", `${STEP_WORDS[st] || st}, ${pct}%`);
  $("#view-job").dataset.status = st;
  const ol = $("#job-steps");
  ol.textContent = "";
  let idx = STEPS.indexOf(st);
  if (st === "FAILED") idx = failedStepIndex(job.last_step);
  STEPS.forEach((s, i) => {
    const li = document.createElement("li");
    li.textContent = STEP_WORDS[s];
    if (st === "COMPLETED" || i < idx) li.className = "done";
    else if (i === idx) li.className = st === "FAILED" ? "failed" : "current";
    ol.appendChild(li);
  });
  const box = $("#job-error");
  if (st === "FAILED") {
    const f = jobFailureMessage(job);
    box.innerHTML = "";
    const s = document.createElement("strong");
    s.textContent = f.title;
    const p1 = document.createElement("p"); p1.textContent = f.text;
    const p2 = document.createElement("p"); p2.textContent = `What to do: ${f.hint}`;
    box.append(s, p1, p2);
    box.hidden = false;
    $("#job-retry").hidden = false;
  } else {
    box.hidden = true;
    $("#job-retry").hidden = true;
  }
}

function showJob(id) {
  currentJobId = id;
  // nothing of the job shown before may stay on screen, above all when this one can't be found
  $("#job-h").textContent = "Match";
  $("#job-sub").textContent = "";
  $("#job-status").hidden = false;
  renderStatus({ status: "PENDING", progress: 0 });
  $("#job-state").textContent = "Loading…";
  $("#job-pct").textContent = "";
  $("#job-steps").textContent = "";
  $("#job-result").hidden = true;
  $("#job-error").hidden = true;
  $("#job-retry").hidden = true;
  $("#save-msg").textContent = "";
  $("#view-job").dataset.status = "";
  focusHeading("job");
  let timer = 0, alive = true, lastStatus = null, delay = 700;
  const poll = async () => {
    if (!alive) return;
    try {
      const job = await api.get(`/jobs/${encodeURIComponent(id)}`);
      if (!alive) return;
      banner("");
      renderStatus(job);
      if (job.status !== lastStatus) {
        say(`${STEP_WORDS[job.status] || job.status}.`);
        if (job.status === "COMPLETED") showResult(job);
        lastStatus = job.status;
      }
      $("#job-sub").textContent = [jobWords(job), job.mode ? MODE_WORDS[job.mode] || `Mode ${job.mode}` : "",
        fmtDate(job.created_at)].filter(Boolean).join(" · ");
      if (job.status === "COMPLETED" || job.status === "FAILED") return;
      delay = 700;
    } catch (e) {
      if (e instanceof SessionExpired || !alive) return;
      if (e.code === "NOT_FOUND" || e.code === "FORBIDDEN") {
        $("#job-status").hidden = true;
        $("#job-h").textContent = e.code === "NOT_FOUND" ? "Match not found" : "Match";
        banner(generalMessage(e), "err");
        return;
      }
      banner(`${generalMessage(e)} We'll keep checking.`, "err");
      delay = Math.min(10_000, delay * 2);
    }
    timer = setTimeout(poll, delay);
  };
  poll();
  $("#job-retry").onclick = async () => {
    $("#job-retry").disabled = true;
    try {
      await api.post(`/jobs/${encodeURIComponent(id)}/retry`, {});
      lastStatus = null;
      clearTimeout(timer);
      alive = true;
      poll();
    } catch (e) { fail(e); } finally { $("#job-retry").disabled = false; }
  };
  leaveView = () => { alive = false; clearTimeout(timer); player.destroyAudio(); window.removeEventListener("resize", onResize); };
  window.addEventListener("resize", onResize);
}

let lastViz = null, resizeT = 0;
function onResize() {
  clearTimeout(resizeT);
  resizeT = setTimeout(() => { if (lastViz && !$("#job-result").hidden) renderViz($("#plots"), lastViz); }, 150);
}

async function fetchJson(url) {
  return (await api.fetchUrl(url)).json();
}

const PLOT_KEYS = ["spectrum", "lufs_trajectory", "gain_reduction", "mid_side", "f0"];
async function loadViz(vizUrls) {
  if (!vizUrls) return null;
  if (typeof vizUrls === "string") return fetchJson(vizUrls);
  const entries = Array.isArray(vizUrls) ? vizUrls.map((u, i) => [String(i), u]) : Object.entries(vizUrls);
  const viz = {};
  await Promise.all(entries.map(async ([k, u]) => {
    const data = await fetchJson(u);
    if (data && PLOT_KEYS.some((p) => p in data)) Object.assign(viz, data); else viz[k] = data;
  }));
  return viz;
}

const METRICS = [
  ["stft_dist", "Spectral distance", (v) => v.toFixed(3), "How far the result's spectrum is from the reference across time scales. Lower is closer; 0 is identical."],
  ["mel_dist", "Tonal balance distance", (v) => `${v.toFixed(2)} dB`, "Average difference in tonal balance to the reference, on a hearing-like scale. Lower is closer."],
  ["lufs_err", "Loudness error", (v) => `${v >= 0 ? "+" : ""}${v.toFixed(2)} LU`, "Difference between the result's loudness and the target loudness. Within ±0.5 LU is spot on."],
  ["tp_db", "True peak", (v) => `${v.toFixed(2)} dBTP`, "The highest peak after conversion to analogue. Should sit at or below the ceiling."],
  ["artifacts_rate", "Limiter strain", (v) => `${(v * 100).toFixed(2)} %`, "Share of the audio where the limiter worked hard or the signal clipped. Under 1 % is clean."],
];

const EXTRA_METRICS = {
  target_lufs: ["Loudness goal", (v) => `${v.toFixed(1)} LUFS`, "The loudness the result was aimed at (the reference's, unless you set one)."],
  result_lufs: ["Result loudness", (v) => `${v.toFixed(1)} LUFS`, "Integrated loudness of the processed result."],
  tp_over_db: ["Peak over ceiling", (v) => `${v.toFixed(2)} dB`, "How far the true peak went past your ceiling. 0 means it stayed under."],
};

function renderMetrics(job) {
  const tb = $("#metrics tbody");
  tb.textContent = "";
  const m = job.metrics || {};
  const rows = METRICS.filter(([k]) => typeof m[k] === "number");
  const add = (label, value, what) => {
    const tr = document.createElement("tr");
    const th = document.createElement("th"); th.scope = "row"; th.textContent = label;
    const td = document.createElement("td"); td.className = "num"; td.textContent = value;
    const tw = document.createElement("td"); tw.textContent = what;
    tr.append(th, td, tw);
    tb.appendChild(tr);
  };
  for (const [k, label, f, what] of rows) add(label, f(m[k]), what);
  const L = job.loudness || {};
  const lu = (v) => (typeof v === "number" ? `${v.toFixed(1)} LUFS` : "—");
  if (Object.keys(L).length) {
    add("Loudness: reference", lu(L.reference_lufs), "Integrated loudness of the reference.");
    add("Loudness: your original", lu(L.target_lufs), "Integrated loudness of your recording before processing.");
    add("Loudness: result", lu(L.result_lufs), "Integrated loudness of the processed result.");
  }
  const shown = new Set(METRICS.map(([k]) => k));
  if (Object.keys(L).length) shown.add("result_lufs");
  for (const [k, v] of Object.entries(m)) {
    if (shown.has(k) || !(typeof v === "number" || typeof v === "string")) continue;
    const known = EXTRA_METRICS[k];
    if (known) add(known[0], typeof v === "number" ? known[1](v) : v, known[2]);
    else add(k.replace(/_/g, " "), String(typeof v === "number" ? +v.toFixed(4) : v), "");
  }
}

function extOf(url, fallback) {
  try { const p = new URL(url, location.href).pathname; const m = p.match(/\.([a-z0-9]{2,5})$/i); return m ? m[1].toLowerCase() : fallback; } catch { return fallback; }
}

function downloadLink(label, url, filename) {
  const li = document.createElement("li");
  const a = document.createElement("a");
  a.href = url;
  a.textContent = label;
  a.setAttribute("download", filename);
  a.dataset.download = filename;
  // Signed URLs (local /objects/{token}, S3 X-Amz-Signature) download natively, streamed to disk.
  // Anything else on our origin may need the bearer token, which a plain link can't send.
  const u = new URL(url, location.href);
  const signed = u.pathname.includes("/objects/") || u.searchParams.has("X-Amz-Signature");
  if (u.origin === location.origin && !signed) {
    a.addEventListener("click", async (e) => {
      e.preventDefault();
      try {
        const blob = await (await api.fetchUrl(url)).blob();
        const obj = URL.createObjectURL(blob);
        const tmp = document.createElement("a");
        tmp.href = obj; tmp.download = filename;
        document.body.appendChild(tmp); tmp.click(); tmp.remove();
        setTimeout(() => URL.revokeObjectURL(obj), 60_000);
      } catch (ex) { fail(ex); }
    });
  }
  li.appendChild(a);
  return li;
}

function renderWarnings(job) {
  // what `tonematch match` would warn about: a clipped input, clipping or flattened peaks, a target not reached
  const ul = $("#job-warnings");
  ul.textContent = "";
  for (const w of job.warnings || []) {
    const li = document.createElement("li");
    li.textContent = w;
    ul.appendChild(li);
  }
  ul.hidden = !(job.warnings || []).length;
}

async function showResult(job) {
  $("#job-result").hidden = false;
  $("#job-h").textContent = "Match finished";
  renderWarnings(job);
  renderMetrics(job);
  renderParams($("#params"), job.params || job.style_params);
  const dl = $("#downloads");
  dl.textContent = "";
  const base = `tonematch-${String(currentJobId).slice(0, 8)}`;
  if (job.download_url) dl.appendChild(downloadLink("Processed audio", job.download_url, `${base}.${extOf(job.download_url, "wav")}`));
  if (job.preset_url) dl.appendChild(downloadLink("Preset (JSON)", job.preset_url, `${base}-preset.json`));
  if (job.eq_text_url) dl.appendChild(downloadLink("EQ for Equalizer APO / REW (text)", job.eq_text_url, `${base}-eq.txt`));
  if (job.preset_id) $("#save-msg").textContent = "";

  const plots = $("#plots");
  plots.innerHTML = '<p class="muted">Loading plots…</p>';
  try {
    const t0 = performance.now();
    lastViz = await loadViz(job.viz_urls);
    const t1 = performance.now();
    const r = renderViz(plots, lastViz || {});
    const timing = { fetch_ms: t1 - t0, render_ms: r.ms, points: r.points, plots: r.plots, paint_ms: null };
    window.tonematch.timings.viz = timing;
    // time from the data in hand to the plots on screen (layout and paint included)
    requestAnimationFrame(() => requestAnimationFrame(() => {
      timing.paint_ms = performance.now() - t1;
      plots.dataset.rendered = String(r.plots);
    }));
  } catch (e) {
    plots.innerHTML = "";
    const p = document.createElement("p");
    p.className = "error";
    p.textContent = e instanceof SessionExpired ? "" : "We couldn't load the plots for this job. The audio and downloads are not affected.";
    plots.appendChild(p);
  }

  const inp = job.inputs || {};
  const L = job.loudness || {};
  player.select("original");
  player.load(
    { original: inp.target_url, processed: job.download_url, reference: inp.reference_url },
    { original: L.target_lufs, processed: L.result_lufs, reference: L.reference_lufs },
  ).catch(() => {});
}

let savingPreset = false;
$("#save-preset").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (savingPreset) return; // a double click would post twice: 201, then 409 "name taken"
  const name = $("#preset-name").value.trim();
  const msg = $("#save-msg");
  msg.className = "upmsg";
  if (!name) { msg.className = "upmsg err"; msg.textContent = "Give the preset a name."; $("#preset-name").focus(); return; }
  const saveBtn = $("#save-preset button[type=submit]");
  savingPreset = true;
  saveBtn.disabled = true;
  msg.textContent = "Saving…";
  try {
    await api.post("/presets", { name, job_id: currentJobId });
    msg.className = "upmsg ok";
    msg.textContent = `Saved as “${name}”. Find it under Presets.`;
    $("#preset-name").value = "";
  } catch (ex) {
    if (ex instanceof SessionExpired) return;
    msg.className = "upmsg err";
    msg.textContent = ex.code === "CONFLICT" ? `You already have a preset called “${name}”. Choose another name.` : generalMessage(ex);
  } finally {
    savingPreset = false;
    saveBtn.disabled = false;
  }
});

// ---------- jobs list ----------
// GET /jobs gives the newest JOBS_PAGE; "Show older jobs" asks for the next page with `before` and
// `before_id` set to the oldest shown job's created_at and id (the service returns the jobs after it in
// its order: created before it, or at the same instant with a smaller id).
const JOBS_PAGE = 50;
let jobsShown = []; // every job on screen, newest first
let jobsMore = false; // the last page was full: there may be older jobs
const jobIdOf = (j) => j.job_id || j.id;

function jobRow(j) {
  const id = jobIdOf(j);
  const tr = document.createElement("tr");
  const c1 = document.createElement("td"); c1.textContent = fmtDate(j.created_at);
  const cr = document.createElement("td"); cr.textContent = jobWords(j);
  const c2 = document.createElement("td"); c2.textContent = j.mode || "";
  const c3 = document.createElement("td");
  const b = document.createElement("span"); b.className = `badge ${j.status}`;
  b.textContent = j.status === "COMPLETED" || j.status === "FAILED" ? STEP_WORDS[j.status] : `${STEP_WORDS[j.status] || j.status}${j.progress != null ? ` ${Math.round(j.progress)}%` : ""}`;
  c3.appendChild(b);
  const c4 = document.createElement("td");
  const a = document.createElement("a"); a.href = `#/jobs/${encodeURIComponent(id)}`; a.textContent = "Open";
  a.setAttribute("aria-label", `Open ${jobWords(j)}, ${fmtDate(j.created_at)}`);
  c4.appendChild(a);
  tr.append(c1, cr, c2, c3, c4);
  return tr;
}

function renderJobs() {
  const tb = $("#jobs-table tbody");
  tb.textContent = "";
  for (const j of jobsShown) tb.appendChild(jobRow(j));
  $("#view-jobs").dataset.loaded = String(jobsShown.length);
  $("#jobs-empty").hidden = jobsShown.length > 0;
  const more = jobsMore && Boolean(jobsShown.length && jobsShown[jobsShown.length - 1].created_at);
  $("#jobs-more").hidden = !more;
  $("#jobs-end").hidden = more || jobsShown.length < JOBS_PAGE;
}

async function loadJobs() {
  const tb = $("#jobs-table tbody");
  if (!$("#view-jobs").dataset.loaded) {
    jobsShown = [];
    jobsMore = false;
    $("#jobs-more").hidden = true;
    $("#jobs-end").hidden = true;
    tb.innerHTML = '<tr><td colspan="5" class="muted">Loading…</td></tr>';
  }
  try {
    const jobs = listOf(await api.get(`/jobs?limit=${JOBS_PAGE}`), "jobs", "items");
    // A refresh renews the newest page and keeps the older pages already shown (in their order,
    // all older than the newest page).
    const fresh = new Set(jobs.map(jobIdOf));
    const older = jobsShown.filter((j) => !fresh.has(jobIdOf(j)));
    if (!older.length) jobsMore = jobs.length >= JOBS_PAGE;
    jobsShown = jobs.concat(older);
    renderJobs();
    // keep running jobs' status fresh while the list is on screen
    if (jobs.some((j) => !["COMPLETED", "FAILED"].includes(j.status))) {
      const t = setTimeout(() => { if (!$("#view-jobs").hidden) loadJobs(); }, 3000);
      const prev = leaveView;
      leaveView = () => { clearTimeout(t); prev(); };
    }
  } catch (e) {
    if (!jobsShown.length) tb.textContent = "";
    fail(e);
  }
}

$("#jobs-more").addEventListener("click", async () => {
  const b = $("#jobs-more");
  const last = jobsShown[jobsShown.length - 1];
  if (b.disabled || !last) return;
  b.disabled = true;
  b.textContent = "Loading older jobs…";
  try {
    const page = listOf(await api.get(`/jobs?limit=${JOBS_PAGE}&before=${encodeURIComponent(last.created_at)}&before_id=${encodeURIComponent(jobIdOf(last))}`), "jobs", "items");
    if ($("#view-jobs").hidden) return;
    const have = new Set(jobsShown.map(jobIdOf));
    const added = page.filter((j) => !have.has(jobIdOf(j)));
    const firstNew = jobsShown.length;
    jobsShown = jobsShown.concat(added);
    jobsMore = page.length >= JOBS_PAGE;
    renderJobs();
    say(added.length ? `${added.length} older job${added.length === 1 ? "" : "s"} shown.` : "There are no older jobs.");
    // the button goes once there is nothing more: keep keyboard focus in the list
    if (b.hidden) ($$("#jobs-table tbody a")[firstNew] || $$("#jobs-table tbody a").pop() || $("#jobs-h")).focus();
  } catch (ex) {
    fail(ex);
  } finally {
    b.disabled = false;
    b.textContent = "Show older jobs";
  }
});

// ---------- presets ----------
let applyPreset = null;
const modeOfPreset = (p) => p.mode || (p.style_params && ["compressor", "reverb", "pitch"].some((k) => p.style_params[k]) ? "B" : "A");

/** The service keeps each finished job's settings as a preset named "job <id>": list those apart. */
function isJobPreset(p) {
  const j = p.source_job_id ? String(p.source_job_id) : "";
  return Boolean(j) && (p.name === `job ${j.slice(0, 8)}` || p.name === `job ${j}`);
}

async function loadPresets() {
  const ul = $("#presets-list");
  ul.innerHTML = '<li class="muted">Loading…</li>';
  delete $("#view-presets").dataset.loaded;
  try {
    const presets = listOf(await api.get("/presets"), "presets", "items");
    ul.textContent = "";
    $("#view-presets").dataset.loaded = String(presets.length);
    const auto = presets.filter(isJobPreset);
    const mine = presets.filter((p) => !isJobPreset(p));
    $("#presets-empty").hidden = mine.length > 0;
    for (const p of mine) ul.appendChild(presetItem(p));
    const al = $("#auto-list");
    al.textContent = "";
    for (const p of auto) al.appendChild(presetItem(p));
    $("#auto-count").textContent = `(${auto.length})`;
    $("#auto-presets").hidden = auto.length === 0;
  } catch (e) {
    ul.textContent = "";
    fail(e);
  }
}

function btn(text, cls, onClick, label) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  if (cls) b.className = cls;
  if (label) b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

function presetItem(p) {
  const id = p.id || p.preset_id;
  const li = document.createElement("li");
  li.dataset.presetId = id;
  li.dataset.name = p.name;
  const info = document.createElement("div");
  const nm = document.createElement("div"); nm.className = "pname"; nm.textContent = p.name;
  const sub = document.createElement("div"); sub.className = "muted small";
  sub.textContent = [`Mode ${modeOfPreset(p)}`, fmtDate(p.created_at)].filter(Boolean).join(" · ");
  info.append(nm, sub);
  const acts = document.createElement("div"); acts.className = "acts";
  const msg = document.createElement("p"); msg.className = "error"; msg.setAttribute("role", "alert"); msg.hidden = true;
  msg.style.flexBasis = "100%";
  const normal = () => {
    acts.textContent = "";
    acts.append(
      btn("Apply…", "primary", () => openApply(p), `Apply ${p.name} to a recording`),
      btn("Rename", "", rename, `Rename ${p.name}`),
      btn("Download", "", download, `Download ${p.name} as JSON`),
      btn("Delete", "danger", confirmDelete, `Delete ${p.name}`),
    );
  };
  const rename = () => {
    acts.textContent = "";
    const f = document.createElement("form");
    const inp = document.createElement("input");
    inp.value = p.name; inp.required = true; inp.maxLength = 80;
    inp.setAttribute("aria-label", "New name");
    const save = document.createElement("button"); save.type = "submit"; save.textContent = "Save"; save.className = "primary";
    f.append(inp, save, btn("Cancel", "", () => { showError(msg, ""); normal(); }));
    f.addEventListener("submit", async (e) => {
      e.preventDefault();
      const name = inp.value.trim();
      if (!name) { showError(msg, "A preset needs a name."); return; }
      try {
        const r = await api.patch(`/presets/${encodeURIComponent(id)}`, { name });
        p.name = (r && r.name) || name;
        nm.textContent = p.name;
        li.dataset.name = p.name;
        showError(msg, "");
        say(`Renamed to ${p.name}.`);
        normal();
        if (li.closest("#auto-list")) loadPresets(); // a named job preset becomes one of "your presets"
      } catch (ex) {
        if (ex instanceof SessionExpired) return;
        showError(msg, ex.code === "CONFLICT" ? `You already have a preset called “${name}”.` : generalMessage(ex));
      }
    });
    acts.appendChild(f);
    inp.focus(); inp.select();
  };
  const confirmDelete = () => {
    acts.textContent = "";
    const q = document.createElement("span"); q.textContent = `Delete “${p.name}”? `;
    const no = btn("Keep it", "", normal);
    acts.append(q, btn("Yes, delete", "danger", async () => {
      try {
        await api.del(`/presets/${encodeURIComponent(id)}`);
        li.remove();
        say(`Deleted ${p.name}.`);
        if (!$("#presets-list li")) $("#presets-empty").hidden = false;
        $("#auto-count").textContent = `(${$$("#auto-list li").length})`;
        if (applyPreset && (applyPreset.id || applyPreset.preset_id) === id) $("#apply-box").hidden = true;
      } catch (ex) { if (!(ex instanceof SessionExpired)) { showError(msg, generalMessage(ex)); normal(); } }
    }), no);
    no.focus();
  };
  const download = async () => {
    try {
      const full = await api.get(`/presets/${encodeURIComponent(id)}`);
      const doc = full.export || { format: "tonematch-preset", version: 1, name: full.name, style_params: full.style_params };
      const blob = new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" });
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = `${p.name.replace(/[^\w.-]+/g, "_")}.json`;
      document.body.appendChild(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
    } catch (ex) { if (!(ex instanceof SessionExpired)) showError(msg, generalMessage(ex)); }
  };
  normal();
  li.append(info, acts, msg);
  return li;
}

function openApply(p) {
  applyPreset = p;
  $("#apply-name").textContent = p.name;
  $("#apply-box").hidden = false;
  showError($("#apply-error"), "");
  $("#apply-file").focus();
}
$("#apply-close").addEventListener("click", () => { $("#apply-box").hidden = true; });
$("#apply-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!applyPreset || !slots.apply.key || slots.apply.busy || applying) return; // one job per press
  const err = $("#apply-error");
  showError(err, "");
  applying = true;
  slots.apply.onChange();
  try {
    const r = await api.post("/jobs", { mode: modeOfPreset(applyPreset), tgt_key: slots.apply.key, preset_id: applyPreset.id || applyPreset.preset_id });
    $("#apply-box").hidden = true;
    location.hash = `#/jobs/${encodeURIComponent(r.job_id || r.id)}`;
  } catch (ex) {
    if (!(ex instanceof SessionExpired)) {
      const field = ex.detail && typeof ex.detail === "object" ? ex.detail.field : null;
      if (field === "tgt_key" && (ex.code === "INVALID_INPUT" || ex.code === "NOT_FOUND")) {
        refuseUpload(slots.apply, ex);
        showError(err, "Your recording can't be used — see the message above.");
      } else {
        showError(err, generalMessage(ex));
      }
    }
  } finally {
    applying = false;
    slots.apply.onChange();
  }
});

// ---------- start ----------
window.tonematch.firstPaint = performance.now();
route();
