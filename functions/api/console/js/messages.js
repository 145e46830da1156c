// Turn API and browser errors into sentences a musician understands, each saying what to do next.

export const AUDIO_TYPES = "WAV, FLAC, AIFF, OGG, Opus, MP3";

export function fmtBytes(n) {
  if (!Number.isFinite(n)) return "";
  const u = ["bytes", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i += 1; }
  return `${n >= 100 || i === 0 ? Math.round(n) : +n.toFixed(1)} ${u[i]}`;
}

// API field names in words.
const FIELD_WORDS = {
  ref_key: "The reference", tgt_key: "The target", key: "The upload", body: "The upload", size_bytes: "The file",
  ext: "The file type", content_type: "The file type", name: "The name", mode: "The mode",
  "opts.target_lufs": "Target loudness", "opts.ceiling_dbtp": "True-peak ceiling", "opts.intensity": "Intensity",
  "opts.output_format": "Output format", "opts.output_sample_rate_hz": "Output sample rate",
  "opts.exclude": "Leave out", "opts.segment_s": "Segment length", email: "The email address", password: "The password",
};
/** pydantic's sentences about a field ("String should have at most 1024 characters") in words. */
function reasonWords(reason) {
  const r = String(reason || "").trim();
  let m = /^String should have at most (\d+) characters?$/i.exec(r);
  if (m) return `is too long (at most ${m[1]} characters)`;
  m = /^String should have at least (\d+) characters?$/i.exec(r);
  if (m) return `is too short (at least ${m[1]} characters)`;
  if (/^Field required$/i.test(r)) return "is missing";
  return null;
}
export function fieldWords(field) {
  if (!field) return "";
  return FIELD_WORDS[field] || (String(field).startsWith("opts.") ? String(field).slice(5).replace(/_/g, " ") : String(field).replace(/_/g, " "));
}

/** "The reference: isn't audio" from {field, reason} or a "field: reason" message. */
function inWords(err) {
  const d = err.detail && typeof err.detail === "object" && !Array.isArray(err.detail) ? err.detail : null;
  let field = d && (d.field || d.where);
  let reason = d && (d.reason || d.message);
  const m = /^([\w.[\]]+): (.*)$/s.exec(err.message || "");
  if (!field && m) { field = m[1]; reason = m[2]; }
  if (!reason) reason = m ? m[2] : err.message;
  if (!field || field === "body" && !reason) return reason || "";
  const said = reasonWords(reason);
  return said ? `${fieldWords(field)} ${said}` : `${fieldWords(field)}: ${reason}`;
}

function detailText(detail) {
  if (!detail) return "";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    // pydantic errors: [{loc, msg}]
    return detail.map((d) => (d && d.msg ? `${(d.loc || []).filter((x) => x !== "body").join(".")}: ${d.msg}` : String(d))).join("; ");
  }
  if (typeof detail === "object") {
    const where = detail.where || detail.field || detail.loc;
    const what = detail.message || detail.reason || detail.msg;
    if (where && what) return `${where}: ${what}`;
    if (where) return String(where);
    if (what) return String(what);
    try { return JSON.stringify(detail); } catch { return ""; }
  }
  return String(detail);
}

const looksLikeNotAudio = (s) => /not (an? )?audio|unsupported|unknown format|format not recogni|cannot read|can't read|could not read|corrupt|truncated|no audio|not a (wav|flac|valid)|file contains data in an unknown format|error opening/i.test(s);

/** Words for a failed upload (err: ApiError or Error). */
export function uploadMessage(err, { pct = null, other = null, limit = null } = {}) {
  const keep = other ? ` Your ${other} upload is kept.` : "";
  const raw = `${err.message || ""} ${detailText(err.detail)}`;
  // A WAV/AIFF cut short: the service says how much is missing, which beats "isn't audio".
  const cut = /\bis truncated: (.+)$/s.exec(err.message || "");
  if (err.code === "INVALID_INPUT" && cut) {
    return `That file is truncated: ${cut[1].trim().replace(/\.$/, "")}. Copy or export it again, then choose it again.${keep}`;
  }
  if (err.code === "NOT_AUDIO" || (err.code === "INVALID_INPUT" && looksLikeNotAudio(raw))) {
    return `That file isn't audio we can read (${AUDIO_TYPES}). Export it from your audio editor in one of those formats and choose it again.${keep}`;
  }
  if (err.code === "TOO_LARGE" || err.status === 413 || /too large|too big|exceeds|over the (signed )?limit/i.test(raw)) {
    const m = /limit of (\d+) bytes/.exec(raw);
    limit = limit || (err.detail && err.detail.limit_bytes) || (m ? Number(m[1]) : null);
    const lim = limit ? ` (the limit is ${fmtBytes(limit)})` : "";
    return `That file is too large to upload${lim}. Export it as FLAC, which is about half the size of WAV, or trim silence at the ends.${keep}`;
  }
  if (/too short|shorter than|sub-second|at least 1/i.test(raw)) {
    return `That recording is too short. We need at least one second of audio.${keep}`;
  }
  if (/channels/i.test(raw)) {
    return `That file has more than two channels. Export a mono or stereo mix and choose it again.${keep}`;
  }
  if (err.code === "NETWORK" || err.code === "ABORTED_NET") {
    const at = pct != null ? ` at ${Math.round(pct)}%` : "";
    return `The connection dropped during the upload${at}. Check your internet connection and press “Resume upload” to carry on.${keep}`;
  }
  if (err.code === "EXPIRED_URL") {
    return `The upload link ran out of time. Press “Resume upload” to carry on.${keep}`;
  }
  return generalMessage(err) + keep;
}

/** Words for any other failed request. */
export function generalMessage(err) {
  const d = detailText(err.detail);
  switch (err.code) {
    case "NETWORK":
      return "We can't reach the tonematch server. Check your connection and try again.";
    case "RATE_LIMITED":
      return "You're sending requests faster than we allow. Wait a minute and try again.";
    case "UNAUTHORIZED":
      return "Your session has expired. Log in again to carry on.";
    case "FORBIDDEN":
      return "That belongs to another account, so you can't open it.";
    case "NOT_FOUND":
      return "We couldn't find that. It may have been deleted.";
    case "CONFLICT":
      return `${err.message || "That conflicts with something that already exists."}${d ? ` (${d})` : ""}`;
    case "INVALID_INPUT": {
      const w = inWords(err);
      if (w) return `${w}.`.replace(/\.\.$/, ".");
      return `${err.message || "Something in the request wasn't right."}${d && !String(err.message).includes(d) ? ` — ${d}` : ""}`;
    }
    default:
      return "Something went wrong on our side. Try again in a minute; if it keeps happening, tell us what you were doing.";
  }
}

export const STEP_WORDS = {
  PENDING: "Waiting to start",
  ANALYZING: "Listening to both recordings",
  INVERTING: "Working out the settings",
  RENDERING: "Processing your recording",
  COMPLETED: "Done",
  FAILED: "Stopped",
};

/** Strip what only a programmer needs from an engine message: exception class names, object keys. */
export function plainReason(text) {
  let t = String(text || "").trim();
  t = t.replace(/^(?:[A-Z]\w*(?:Error|Exception|Failed)\s*:\s*)+/, "");
  t = t.replace(/\b(target|reference|tgt_key|ref_key)\s*[:=]?\s*'?[0-9a-f]{8}-[0-9a-f-]{27}\/[\w./-]+'?\s*:?\s*/gi,
    (_, who) => (/^(target|tgt_key)$/i.test(who) ? "your target " : "the reference "));
  t = t.replace(/'?[0-9a-f]{8}-[0-9a-f-]{27}\/[\w./-]+'?/g, "the file");
  t = t.replace(/^(your target|the reference) (is|has|contains|was)/, "$1 $2");
  t = t.replace(/\s+/g, " ").trim();
  return t ? t[0].toUpperCase() + t.slice(1) : t;
}

/** Words for a failed job: what happened, where, and what to do. */
export function jobFailureMessage(job) {
  const step = job.last_step ? String(job.last_step) : "";
  const stepWords = {
    analyzereference: "listening to the reference",
    analyzetarget: "listening to your target",
    analyze: "listening to the recordings",
    invert: "working out the settings",
    plansegments: "planning the processing",
    plan: "planning the processing",
    render: "processing your recording",
    rendersegment: "processing your recording",
    rendersegments: "processing your recording",
    merge: "joining the processed parts",
    finalize: "saving the result",
  }[step.toLowerCase().replace(/[^a-z]/g, "")] || (step ? step.replace(/([a-z])([A-Z])/g, "$1 $2").replace(/_/g, " ").toLowerCase() : "processing");
  let err = job.error;
  let text = "";
  if (err && typeof err === "object") text = inWords(err) || detailText(err.detail);
  else if (err) text = String(err).replace(/^(ref_key|tgt_key|reference|target)\b:?/, (m0, f) => `${fieldWords(f === "reference" ? "ref_key" : f === "target" ? "tgt_key" : f)}:`);
  text = plainReason(text);
  let hint = "Press “Try again”. If it fails again, try other files.";
  if (/\bis truncated: /i.test(text)) hint = "One of the files is cut short. Copy or export it again, then start a new match.";
  else if (looksLikeNotAudio(text)) hint = `Check that both files are audio we can read (${AUDIO_TYPES}), then start a new match.`;
  else if (/silen/i.test(text)) hint = "One of the files is silent or nearly so. Choose a file with music in it.";
  else if (/too short|shorter than/i.test(text)) hint = "One of the files is too short. Use at least a few seconds of audio.";
  else if (/NaN|Inf/i.test(text)) hint = "One of the files holds broken samples. Re-export it from your audio editor.";
  else if (/channel/i.test(text)) hint = "Use mono or stereo files.";
  return { title: `The match stopped while ${stepWords}.`, text: text || "No reason was given.", hint };
}
