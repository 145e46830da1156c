// Uploads straight to the object store through signed URLs: one PUT for small files, parts for big
// ones (resumable: finished parts are remembered in localStorage and skipped on resume).

import { ApiError, parseError } from "./api.js";

const EXT_TYPES = { wav: "audio/wav", flac: "audio/flac", ogg: "audio/ogg", mp3: "audio/mpeg",
  aif: "audio/aiff", aiff: "audio/aiff" };
const PART_RETRIES = 3;
const PARALLEL_PARTS = 3;

/** Look at the first bytes: is this a container we can read? Returns the extension or null. */
export async function sniffAudio(file) {
  if (!file || file.size === 0) return null;
  const b = new Uint8Array(await file.slice(0, 12).arrayBuffer());
  const s = (i, n) => String.fromCharCode(...b.slice(i, i + n));
  if ((s(0, 4) === "RIFF" || s(0, 4) === "RF64" || s(0, 4) === "BW64") && s(8, 4) === "WAVE") return "wav";
  if (s(0, 4) === "fLaC") return "flac";
  if (s(0, 4) === "OggS") return "ogg";
  if (s(0, 4) === "FORM" && (s(8, 4) === "AIFF" || s(8, 4) === "AIFC")) return "aiff";
  if (s(0, 3) === "ID3" || (b[0] === 0xff && (b[1] & 0xe0) === 0xe0)) return "mp3";
  return null;
}

const fileSig = (f) => `tm.up.${f.name}|${f.size}|${f.lastModified}`;

function loadResume(file) {
  try { return JSON.parse(localStorage.getItem(fileSig(file)) || "null"); } catch { return null; }
}
function saveResume(file, st) {
  try { localStorage.setItem(fileSig(file), JSON.stringify(st)); } catch { /* storage full: resume just restarts */ }
}
export function forgetResume(file) { localStorage.removeItem(fileSig(file)); }
/** Forget every half-done upload (on log-out: the next user must not resume into these part URLs). */
export function forgetAllResumes() {
  for (const k of Object.keys(localStorage)) if (k.startsWith("tm.up.")) localStorage.removeItem(k);
}
export function hasResume(file) { return Boolean(file && loadResume(file)); }

/** PUT a blob with progress; resolves with the response ETag. */
function putBlob(url, blob, { headers = {}, onProgress, signal }) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable && onProgress) onProgress(e.loaded); };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        if (onProgress) onProgress(blob.size);
        resolve((xhr.getResponseHeader("ETag") || "").replace(/^W\//, ""));
        return;
      }
      const resp = new Response(xhr.responseText || null, { status: xhr.status, statusText: xhr.statusText,
        headers: { "Content-Type": xhr.getResponseHeader("Content-Type") || "text/plain" } });
      parseError(resp).then((e) => {
        // S3 answers 403 with an XML body when a signed URL has expired.
        if (xhr.status === 403 && /expired/i.test(xhr.responseText || "")) e = new ApiError("EXPIRED_URL", "signed URL expired", null, 403);
        reject(e);
      });
    };
    xhr.onerror = () => reject(new ApiError("NETWORK", "connection dropped"));
    xhr.onabort = () => reject(new ApiError("ABORTED", "upload cancelled"));
    if (signal) {
      if (signal.aborted) { xhr.abort(); return; }
      signal.addEventListener("abort", () => xhr.abort(), { once: true });
    }
    xhr.send(blob);
  });
}

const sleep = (ms, signal) => new Promise((res, rej) => {
  const t = setTimeout(res, ms);
  if (signal) signal.addEventListener("abort", () => { clearTimeout(t); rej(new ApiError("ABORTED", "upload cancelled")); }, { once: true });
});

async function withRetry(fn, signal) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await fn();
    } catch (e) {
      const transient = e.code === "NETWORK" || (e.status >= 500);
      if (!transient || attempt >= PART_RETRIES || (signal && signal.aborted)) throw e;
      await sleep(1000 * 2 ** attempt, signal);
    }
  }
}

/**
 * Upload one audio file. Returns {key, ...}: the object key to give POST /jobs.
 * onProgress(fraction 0..1). Throws ApiError; code NOT_AUDIO when the bytes are not audio.
 */
export async function uploadAudio(api, file, { onProgress = () => {}, signal } = {}) {
  const ext = await sniffAudio(file);
  if (!ext) throw new ApiError("NOT_AUDIO", file && file.size === 0 ? "empty file" : "not an audio file");
  const nameExt = (file.name.split(".").pop() || "").toLowerCase();
  const useExt = nameExt === ext || (ext === "aiff" && nameExt === "aif") ? nameExt : ext;
  const contentType = EXT_TYPES[useExt];

  // A half-done multipart upload of this very file resumes while its part URLs are still valid
  // (`expires` is in seconds from signing).
  let st = loadResume(file);
  if (st && Date.now() > st.signed_at_ms + (Number(st.sign.expires) || 0) * 1000 - 60_000) {
    forgetResume(file);
    st = null;
  }
  if (!st) {
    const sign = await api.post("/uploads/sign", { content_type: contentType, ext: useExt, size_bytes: file.size });
    st = { sign, done: {}, signed_at_ms: Date.now() };
    if (sign.upload_id) saveResume(file, st);
  }
  const sign = st.sign;
  let result;
  if (sign.upload_id && Array.isArray(sign.parts)) {
    try {
      result = await uploadParts(api, file, st, onProgress, signal);
    } catch (e) {
      // The service refused to join the parts (unknown upload, bad parts, another account's key):
      // resuming would only repeat that, so the next try signs afresh. A dropped connection, a
      // server error, a rate limit, a cancel or an expired session keep the parts for "Resume upload".
      const transient = e.code === "NETWORK" || e.code === "RATE_LIMITED" || e.status >= 500 || e.status === 401;
      if (e.stage === "complete" && !transient) forgetResume(file);
      throw e;
    }
  } else {
    // The signed URL carries its own authority; the content type must be the one that was signed.
    const headers = { "Content-Type": sign.content_type || contentType, ...(sign.headers || {}) };
    await withRetry(() => putBlob(sign.put_url, file, { headers, signal, onProgress: (n) => onProgress(n / file.size) }), signal);
    result = { key: sign.key, size_bytes: file.size };
  }
  forgetResume(file);
  onProgress(1);
  return { ...(result || {}), key: (result && result.key) || sign.key };
}

async function uploadParts(api, file, st, onProgress, signal) {
  const sign = st.sign;
  const partSize = sign.part_size_bytes || Math.ceil(file.size / sign.parts.length);
  const loaded = {};
  for (const n of Object.keys(st.done)) loaded[n] = Math.min(partSize, file.size - (n - 1) * partSize);
  const report = () => onProgress(Object.values(loaded).reduce((a, b) => a + b, 0) / file.size);
  report();
  const todo = sign.parts.filter((p) => !st.done[p.part_number]);
  // One part failing for good stops the others, so nothing keeps running behind a "Resume" button.
  const inner = new AbortController();
  if (signal) signal.addEventListener("abort", () => inner.abort(), { once: true });
  signal = inner.signal;
  let next = 0;
  const worker = async () => {
    while (next < todo.length && !signal.aborted) {
      const p = todo[next++];
      const start = (p.part_number - 1) * partSize;
      const blob = file.slice(start, Math.min(start + partSize, file.size));
      const headers = { ...(p.headers || sign.headers || {}) };
      const etag = await withRetry(() => putBlob(p.put_url, blob, { headers, signal,
        onProgress: (n) => { loaded[p.part_number] = n; report(); } }), signal);
      st.done[p.part_number] = etag;
      saveResume(file, st);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_PARTS, todo.length) },
    () => worker().catch((e) => { inner.abort(); throw e; })));
  const parts = sign.parts.map((p) => ({ part_number: p.part_number, etag: st.done[p.part_number] }));
  try {
    return await api.post("/uploads/complete", { key: sign.key, upload_id: sign.upload_id, parts });
  } catch (e) {
    // "already complete": an earlier complete went through but its answer was lost on the way
    if (e.code === "CONFLICT" && e.detail && e.detail.field === "key") return { key: sign.key, size_bytes: file.size };
    e.stage = "complete";
    throw e;
  }
}
