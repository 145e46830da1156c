// Level-matched A/B/reference player. All three versions play at once from one clock and switching
// only moves gains (a 10 ms crossfade), so the play position is kept exactly.
// Short files are decoded into memory (sample-exact lock-step). Long files (a 60-minute job would need
// gigabytes decoded) stream through <audio> elements routed into Web Audio, kept in step by a
// drift check.

import { fmtTime } from "./plots.js";

const SOURCES = ["original", "processed", "reference"];
const XFADE_S = 0.01;
const DRIFT_S = 0.06;
/** Above this many bytes (all three files) the player streams instead of decoding. */
export const MAX_DECODE_BYTES = 150e6;

export class AbPlayer {
  /** root: the .player element; api: Api (for authorised fetches). */
  constructor(root, api) {
    this.root = root;
    this.api = api;
    this.ctx = null;
    this.mode = null; // "decoded" | "stream"
    this.buffers = {};
    this.els = {};
    this.chain = {};
    this.levelGain = {};
    this.active = "original";
    this.nodes = null;
    this.offset = 0;
    this.startedAt = 0;
    this.playing = false;
    this.duration = 0;
    this.raf = 0;
    this.loadId = 0;
    this.playBtn = root.querySelector("#play");
    this.seek = root.querySelector("#seek");
    this.timeEl = root.querySelector("#ptime");
    this.msg = root.querySelector("#player-msg");
    this.gainsEl = root.querySelector("#player-gains");
    this.radios = [...root.querySelectorAll("[data-src]")];
    this._wire();
  }

  _wire() {
    this.radios.forEach((b) => {
      b.addEventListener("click", () => this.select(b.dataset.src));
      b.addEventListener("keydown", (e) => {
        const i = this.radios.indexOf(b);
        const d = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[e.key];
        if (d) {
          e.preventDefault();
          const nb = this.radios[(i + d + this.radios.length) % this.radios.length];
          nb.focus();
          this.select(nb.dataset.src);
        }
      });
    });
    this.playBtn.addEventListener("click", () => (this.playing ? this.pause() : this.play()));
    this.seek.addEventListener("input", () => this.seekTo(Number(this.seek.value)));
    document.addEventListener("keydown", (e) => {
      if (!this.root.isConnected || this.root.closest("[hidden]")) return;
      if (/INPUT|TEXTAREA|SELECT/.test(e.target.tagName) && e.target !== this.seek) return;
      const k = { 1: "original", 2: "processed", 3: "reference" }[e.key];
      if (k && this.ready) { e.preventDefault(); this.select(k); }
    });
  }

  get ready() { return this.root.dataset.state === "ready" || this.root.dataset.state === "playing"; }

  _state(s) { this.root.dataset.state = s; }

  /** urls: {original, processed, reference}; lufs: same keys (integrated LUFS, may be null). */
  async load(urls, lufs) {
    this.destroyAudio();
    const id = ++this.loadId;
    this._state("loading");
    this.radios.forEach((b) => { b.disabled = !urls[b.dataset.src]; });
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) {
      this._state("error");
      this.msg.textContent = "This browser can't play audio with Web Audio. Try a current Chrome, Firefox or Safari.";
      return;
    }
    this.ctx = new Ctx();
    this.msg.textContent = "Loading audio…";
    const names = SOURCES.filter((s) => urls[s]);
    const abort = new AbortController();
    const resps = await Promise.all(names.map((s) => this.api.fetchUrl(urls[s], { signal: abort.signal })
      .then((r) => [s, r]).catch((e) => [s, null, e])));
    if (id !== this.loadId) { abort.abort(); return; }
    const total = resps.reduce((a, [, r]) => a + (r ? Number(r.headers.get("content-length")) || 0 : 0), 0);
    const failed = [];
    const limit = (window.tonematch && window.tonematch.maxDecodeBytes) || MAX_DECODE_BYTES;
    if (total > limit) {
      abort.abort();
      this.mode = "stream";
      await this._loadStreaming(urls, names, failed);
    } else {
      this.mode = "decoded";
      await Promise.all(resps.map(async ([s, r]) => {
        try {
          if (!r) throw new Error("fetch failed");
          this.buffers[s] = await this.ctx.decodeAudioData(await r.arrayBuffer());
        } catch {
          failed.push(s);
        }
      }));
      if (this.buffers.original) this.duration = this.buffers.original.duration;
    }
    if (id !== this.loadId) return;
    const have = (s) => (this.mode === "decoded" ? Boolean(this.buffers[s]) : Boolean(this.els[s]));
    if (!have("original") || !have("processed")) {
      this._state("error");
      this.msg.textContent = "We couldn't load the audio for the player. You can still download the result below.";
      return;
    }
    this._levels(lufs, have);
    this.seek.max = String(this.duration);
    this.seek.step = String(Math.max(0.01, this.duration / 1000));
    this.seek.disabled = false;
    this.playBtn.disabled = false;
    for (const s of failed) this.radios.find((b) => b.dataset.src === s).disabled = true;
    this.root.dataset.mode = this.mode;
    this.msg.textContent = failed.includes("reference")
      ? "The reference couldn't be loaded; you can compare original and processed."
      : `Press play, then switch with the buttons or the keys 1, 2 and 3.${this.mode === "stream" ? " (Long recording: streaming.)" : ""}`;
    this._state("ready");
    this._tick();
  }

  // Equal loudness: bring every version down to the quietest one (never boost, so nothing clips).
  _levels(lufs, have) {
    const known = SOURCES.filter((s) => have(s) && Number.isFinite(lufs[s]));
    const floor = known.length ? Math.min(...known.map((s) => lufs[s])) : 0;
    for (const s of SOURCES) {
      const db = Number.isFinite(lufs[s]) && known.length >= 2 ? floor - lufs[s] : 0;
      this.levelGain[s] = 10 ** (db / 20);
      if (this.chain[s]) this.chain[s].lvl.gain.value = this.levelGain[s];
    }
    this.gainsEl.textContent = known.length >= 2
      ? `Level match: ${known.map((s) => `${s} ${lufs[s].toFixed(1)} LUFS → ${(floor - lufs[s]).toFixed(1)} dB`).join(", ")}.`
      : "Loudness unknown: versions play at their own level.";
    this.root.dataset.gains = JSON.stringify(this.levelGain);
  }

  async _loadStreaming(urls, names, failed) {
    await Promise.all(names.map((s) => new Promise((resolve) => {
      const el = new Audio();
      el.preload = "auto";
      if (new URL(urls[s], location.href).origin !== location.origin) el.crossOrigin = "anonymous";
      el.loop = s === "reference";
      const done = (ok) => { el.onloadedmetadata = null; el.onerror = null; if (!ok) failed.push(s); resolve(); };
      el.onloadedmetadata = () => {
        this.els[s] = el;
        this._route(s, this.ctx.createMediaElementSource(el));
        done(true);
      };
      el.onerror = () => done(false);
      el.src = urls[s];
    })));
    if (this.els.original) {
      this.duration = this.els.original.duration;
      this.els.original.onended = () => this.pause(true);
    }
  }

  /** source node → level-match gain → A/B switch gain → speakers (kept for the player's life). */
  _route(s, node) {
    const lvl = this.ctx.createGain();
    lvl.gain.value = this.levelGain[s] ?? 1;
    const sw = this.ctx.createGain();
    sw.gain.value = s === this.active ? 1 : 0;
    if (node) node.connect(lvl);
    lvl.connect(sw).connect(this.ctx.destination);
    this.chain[s] = { node, lvl, sw };
  }

  position() {
    if (this.mode === "stream") return this.els.original ? this.els.original.currentTime : 0;
    if (!this.playing) return this.offset;
    return Math.min(this.duration, this.offset + (this.ctx.currentTime - this.startedAt));
  }

  select(src) {
    const have = this.mode === "stream" ? this.els[src] : this.buffers[src];
    if (!have && this.ready) return;
    this.active = src;
    this.root.dataset.active = src;
    this.radios.forEach((b) => b.setAttribute("aria-checked", String(b.dataset.src === src)));
    if (!this.ctx) return;
    const t = this.ctx.currentTime;
    for (const [s, n] of Object.entries(this.chain)) {
      n.sw.gain.cancelScheduledValues(t);
      n.sw.gain.setValueAtTime(n.sw.gain.value, t);
      n.sw.gain.linearRampToValueAtTime(s === src ? 1 : 0, t + XFADE_S);
    }
  }

  async play() {
    if (!this.ctx || this.playing) return;
    await this.ctx.resume();
    if (this.mode === "stream") {
      const pos = this.position() >= this.duration - 0.05 ? 0 : this.position();
      this._syncTo(pos, true);
      await Promise.all(Object.values(this.els).map((el) => el.play().catch(() => {})));
    } else {
      if (this.offset >= this.duration - 0.05) this.offset = 0;
      const t = this.ctx.currentTime + 0.03;
      this.nodes = {};
      for (const s of SOURCES) {
        const buf = this.buffers[s];
        if (!buf) continue;
        const src = this.ctx.createBufferSource();
        src.buffer = buf;
        // The reference is a different piece: loop it so it keeps playing at any position.
        src.loop = s === "reference";
        if (!this.chain[s]) this._route(s, null);
        src.connect(this.chain[s].lvl);
        src.start(t, s === "reference" ? this.offset % buf.duration : Math.min(this.offset, buf.duration));
        this.nodes[s] = src;
      }
      this.nodes.original.onended = () => { if (this.playing && this.position() >= this.duration - 0.05) this.pause(true); };
      this.startedAt = t;
    }
    this.playing = true;
    this.playBtn.textContent = "❚❚";
    this.playBtn.setAttribute("aria-label", "Pause");
    this._state("playing");
  }

  pause(ended = false) {
    if (!this.playing) return;
    if (this.mode === "stream") {
      for (const el of Object.values(this.els)) el.pause();
      if (ended) this._syncTo(0, true);
    } else {
      this.offset = ended ? 0 : this.position();
      this._stopNodes();
    }
    this.playing = false;
    this.playBtn.textContent = "▶";
    this.playBtn.setAttribute("aria-label", "Play");
    this._state("ready");
    this._render();
  }

  seekTo(s) {
    s = Math.max(0, Math.min(this.duration, s));
    if (this.mode === "stream") { this._syncTo(s, true); this._render(); return; }
    const was = this.playing;
    if (was) { this._stopNodes(); this.playing = false; }
    this.offset = s;
    if (was) this.play(); else this._render();
  }

  /** Streaming: put the other versions where the original is (all when `all`). */
  _syncTo(pos, all = false) {
    let worst = 0;
    for (const [s, el] of Object.entries(this.els)) {
      if (!all && s === "original") continue;
      const want = s === "reference" && el.duration ? pos % el.duration : Math.min(pos, el.duration || pos);
      const off = Math.abs(el.currentTime - want);
      if (s !== "reference") worst = Math.max(worst, off);
      if (all || off > DRIFT_S) el.currentTime = want;
    }
    if (!all) this.root.dataset.drift = worst.toFixed(3); // seconds between original and processed
  }

  _stopNodes() {
    if (!this.nodes) return;
    for (const src of Object.values(this.nodes)) {
      src.onended = null;
      try { src.stop(); } catch { /* already stopped */ }
      src.disconnect();
    }
    this.nodes = null;
  }

  _render() {
    const p = this.position();
    if (document.activeElement !== this.seek) this.seek.value = String(p);
    this.timeEl.textContent = `${fmtTime(p)} / ${fmtTime(this.duration)}`;
    this.root.dataset.position = p.toFixed(2);
    this.seek.setAttribute("aria-valuetext", `${fmtTime(p)} of ${fmtTime(this.duration)}`);
  }

  _tick() {
    cancelAnimationFrame(this.raf);
    let lastSync = 0;
    const loop = (now) => {
      this._render();
      if (this.mode === "stream" && this.playing && now - lastSync > 500) {
        lastSync = now;
        this._syncTo(this.position());
      }
      this.raf = requestAnimationFrame(loop);
    };
    this.raf = requestAnimationFrame(loop);
  }

  destroyAudio() {
    this.loadId++;
    cancelAnimationFrame(this.raf);
    this._stopNodes();
    for (const el of Object.values(this.els)) { el.pause(); el.removeAttribute("src"); el.load(); }
    this.els = {};
    this.chain = {};
    this.playing = false;
    this.offset = 0;
    this.duration = 0;
    this.buffers = {};
    this.mode = null;
    if (this.ctx) { this.ctx.close().catch(() => {}); this.ctx = null; }
    this.playBtn.disabled = true;
    this.seek.disabled = true;
    this.playBtn.textContent = "▶";
    this.playBtn.setAttribute("aria-label", "Play");
    this._state("idle");
  }
}
