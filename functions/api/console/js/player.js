// Level-matched A/B/reference player. All three decoded buffers play in lock-step from one clock;
// switching only moves gains (a 10 ms crossfade), so the play position is kept exactly.

import { fmtTime } from "./plots.js";

const SOURCES = ["original", "processed", "reference"];
const XFADE_S = 0.01;
// Above this many bytes (all three files together) decoding in the browser would need too much memory.
export const MAX_DECODE_BYTES = 400e6;

export class AbPlayer {
  /** root: the .player element; api: Api (for authorised fetches). */
  constructor(root, api) {
    this.root = root;
    this.api = api;
    this.ctx = null;
    this.buffers = {};
    this.levelGain = {};
    this.active = "original";
    this.nodes = null;
    this.offset = 0;
    this.startedAt = 0;
    this.playing = false;
    this.duration = 0;
    this.raf = 0;
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
    this._keys = (e) => {
      if (!this.root.isConnected || this.root.closest("[hidden]")) return;
      if (/INPUT|TEXTAREA|SELECT/.test(e.target.tagName) && e.target !== this.seek) return;
      const k = { 1: "original", 2: "processed", 3: "reference" }[e.key];
      if (k && this.ready) { e.preventDefault(); this.select(k); }
    };
    document.addEventListener("keydown", this._keys);
  }

  get ready() { return this.root.dataset.state === "ready" || this.root.dataset.state === "playing"; }

  _state(s) { this.root.dataset.state = s; }

  /** urls: {original, processed, reference}; lufs: same keys (integrated LUFS, may be null). */
  async load(urls, lufs, { sizeBytes = 0 } = {}) {
    this.destroyAudio();
    this._state("loading");
    this.radios.forEach((b) => { b.disabled = !urls[b.dataset.src]; });
    if (sizeBytes > MAX_DECODE_BYTES) {
      this._state("too-big");
      this.msg.textContent = "These recordings are too long to compare in the browser. Download the result to listen.";
      return;
    }
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) { this._state("error"); this.msg.textContent = "This browser can't play audio with Web Audio. Try a current Chrome, Firefox or Safari."; return; }
    this.ctx = new Ctx();
    this.msg.textContent = "Loading audio…";
    const loaded = await Promise.all(SOURCES.filter((s) => urls[s]).map(async (s) => {
      try {
        const resp = await this.api.fetchUrl(urls[s]);
        const buf = await this.ctx.decodeAudioData(await resp.arrayBuffer());
        return [s, buf];
      } catch (e) {
        return [s, null, e];
      }
    }));
    const failed = [];
    for (const [s, buf] of loaded) { if (buf) this.buffers[s] = buf; else failed.push(s); }
    if (!this.buffers.original || !this.buffers.processed) {
      this._state("error");
      this.msg.textContent = "We couldn't load the audio for the player. You can still download the result below.";
      return;
    }
    // Equal loudness: bring every version down to the quietest one (never boost, so nothing clips).
    const known = SOURCES.filter((s) => this.buffers[s] && Number.isFinite(lufs[s]));
    const floor = known.length ? Math.min(...known.map((s) => lufs[s])) : 0;
    for (const s of SOURCES) {
      const db = Number.isFinite(lufs[s]) ? floor - lufs[s] : 0;
      this.levelGain[s] = 10 ** (db / 20);
    }
    this.gainsEl.textContent = known.length === 3 || known.length === 2
      ? `Level match: ${known.map((s) => `${s} ${lufs[s].toFixed(1)} LUFS → ${(floor - lufs[s]).toFixed(1)} dB`).join(", ")}.`
      : "Loudness unknown: versions play at their own level.";
    this.root.dataset.gains = JSON.stringify(this.levelGain);
    this.duration = this.buffers.original.duration;
    this.seek.max = String(this.duration);
    this.seek.step = String(Math.max(0.01, this.duration / 1000));
    this.seek.disabled = false;
    this.playBtn.disabled = false;
    for (const s of failed) this.radios.find((b) => b.dataset.src === s).disabled = true;
    this.msg.textContent = failed.includes("reference")
      ? "The reference couldn't be loaded; you can compare original and processed."
      : "Press play, then switch with the buttons or the keys 1, 2 and 3.";
    this._state("ready");
    this._tick();
  }

  position() {
    if (!this.playing) return this.offset;
    return Math.min(this.duration, this.offset + (this.ctx.currentTime - this.startedAt));
  }

  select(src) {
    if (!this.buffers[src] && this.ready) return;
    this.active = src;
    this.root.dataset.active = src;
    this.radios.forEach((b) => b.setAttribute("aria-checked", String(b.dataset.src === src)));
    if (this.nodes) {
      const t = this.ctx.currentTime;
      for (const [s, n] of Object.entries(this.nodes)) {
        n.sw.gain.cancelScheduledValues(t);
        n.sw.gain.setValueAtTime(n.sw.gain.value, t);
        n.sw.gain.linearRampToValueAtTime(s === src ? 1 : 0, t + XFADE_S);
      }
    }
  }

  async play() {
    if (!this.ctx || this.playing) return;
    await this.ctx.resume();
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
      const lvl = this.ctx.createGain();
      lvl.gain.value = this.levelGain[s];
      const sw = this.ctx.createGain();
      sw.gain.value = s === this.active ? 1 : 0;
      src.connect(lvl).connect(sw).connect(this.ctx.destination);
      src.start(t, s === "reference" ? this.offset % buf.duration : Math.min(this.offset, buf.duration));
      this.nodes[s] = { src, lvl, sw };
    }
    this.nodes.original.src.onended = () => { if (this.playing && this.position() >= this.duration - 0.05) this.pause(true); };
    this.startedAt = t;
    this.playing = true;
    this.playBtn.textContent = "❚❚";
    this.playBtn.setAttribute("aria-label", "Pause");
    this._state("playing");
  }

  pause(ended = false) {
    if (!this.playing) return;
    this.offset = ended ? 0 : this.position();
    this._stopNodes();
    this.playing = false;
    this.playBtn.textContent = "▶";
    this.playBtn.setAttribute("aria-label", "Play");
    this._state("ready");
    this._render();
  }

  seekTo(s) {
    const was = this.playing;
    if (was) { this._stopNodes(); this.playing = false; }
    this.offset = Math.max(0, Math.min(this.duration, s));
    if (was) this.play(); else this._render();
  }

  _stopNodes() {
    if (!this.nodes) return;
    for (const n of Object.values(this.nodes)) {
      n.src.onended = null;
      try { n.src.stop(); } catch { /* already stopped */ }
      n.src.disconnect();
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
    const loop = () => { this._render(); this.raf = requestAnimationFrame(loop); };
    this.raf = requestAnimationFrame(loop);
  }

  destroyAudio() {
    cancelAnimationFrame(this.raf);
    this._stopNodes();
    this.playing = false;
    this.offset = 0;
    this.buffers = {};
    if (this.ctx) { this.ctx.close().catch(() => {}); this.ctx = null; }
    this.playBtn.disabled = true;
    this.seek.disabled = true;
    this.playBtn.textContent = "▶";
    this.playBtn.setAttribute("aria-label", "Play");
    this._state("idle");
  }
}
