"""Train the blind RT60 / DRR estimator and export it to ONNX (``engine/models/reverb_blind.onnx``).

Run: ``python -m engine.estimators.train_reverb`` (needs the ``train`` extra: torch; and Debian's
``espeak-ng`` for the speech). Takes a few minutes on one core.

Data, all generated here (nothing downloaded): dry speech from espeak-ng (several voices, speeds and
pitches, English and other languages) and synthetic music-like signals (harmonic notes with envelopes,
chords, percussive noise bursts), cut into 6 s clips; each convolved with a library IR
(``engine.ir_library``: room / plate / hall; or, for half the clips, ``random_ir``, a second family
with random high-frequency damping and early reflections; RT60 log-uniform 0.2..4 s, pre-delay
0..40 ms) mixed with
the dry signal at a direct-to-reverberant ratio uniform in -8..+22 dB, plus a noise floor at -75..-55
dB. Labels: the IR's RT60 and the exact DRR (dry energy over wet energy of the clip).
Held-out split: sources (sentences / voices / music seeds) AND IR RT60 values are disjoint from
training. The model: standardisation + MLP (78 -> 64 -> 64 -> 2, ReLU), outputs ``ln(RT60_s)`` and
``DRR_dB / 10``; written as a plain ONNX graph (MatMul/Add/Relu) with onnx.helper, so no exporter
version matters. The JSON card next to it records the data, the held-out errors of the model and of
the DSP estimator (``reverb_features.dsp_rt60_s``) and of a constant (training-mean) DRR predictor.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from scipy import signal

from engine.estimators import MODEL_DIR, MODEL_NAME
from engine.estimators.reverb_features import (
    ANALYSIS_RATE_HZ,
    FEATURE_VERSION,
    N_FEATURES,
    dsp_rt60_s,
    reverb_features,
)
from engine.ir_library import KINDS, generate_ir, ir_key

FS = ANALYSIS_RATE_HZ
CLIP_S = 6.0

SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the quiet river bank.",
    "Please remember to bring the blue folder to the meeting tomorrow morning.",
    "We recorded this episode in a small room with a single microphone.",
    "Seven bright stars appeared above the mountains after the long storm.",
    "A good mix leaves space for every instrument and for the voice.",
    "The concert hall was full, and the orchestra began with a slow chord.",
    "Turn left at the bakery, then walk two blocks to the old station.",
    "Numbers like three hundred and forty two are hard to say quickly.",
    "She whispered the answer, but everyone in the back row heard it.",
    "Coffee, tea or water: choose one and sit down by the window.",
    "Our podcast today is about sound, rooms and the way echoes fade.",
    "The engineer pressed record, counted to four, and the band played.",
    "Weather tomorrow: cloudy in the north, sunny along the coast.",
    "Every morning the train leaves at six and arrives before eight.",
    "Listen closely to the last note as it rings out and slowly dies.",
    "Big drums boom in the cathedral while the choir holds its breath.",
]
VOICES = ["en-us", "en", "en-gb-x-rp", "de", "fr", "es", "it", "nl", "pt", "pl"]
VARIANTS = ["", "+m3", "+f2", "+m1", "+f4"]


def speech_sources(rng: np.random.Generator, n: int, workdir: Path) -> list[np.ndarray]:
    """``n`` dry speech signals (16 kHz) from espeak-ng; distinct (sentence, voice) pairs."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SystemExit("espeak-ng not found: apt-get install -y espeak-ng")
    out = []
    for i in range(n):
        text = " ".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(2))
        voice = VOICES[i % len(VOICES)] + VARIANTS[(i // len(VOICES)) % len(VARIANTS)]
        path = workdir / f"s{i}.wav"
        subprocess.run(
            [
                exe,
                "-v",
                voice,
                "-s",
                str(int(rng.integers(130, 200))),
                "-p",
                str(int(rng.integers(25, 75))),
                "-w",
                str(path),
                text,
            ],
            check=True,
            capture_output=True,
        )
        x, fs = sf.read(path, dtype="float64")
        out.append(soxr.resample(x, fs, FS))
    return out


def music_source(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A dry music-like signal: notes / chords with envelopes, rests, percussive bursts."""
    n = int(seconds * FS)
    y = np.zeros(n)
    t = 0.0
    tempo_s = rng.uniform(0.12, 0.5)
    while t < seconds:
        dur = tempo_s * rng.choice([0.5, 1, 1, 2, 3])
        if rng.random() < 0.8:
            start = int(t * FS)
            m = min(int(dur * FS * rng.uniform(0.3, 1.0)), n - start)
            if m > 32:
                tt = np.arange(m) / FS
                f0s = 110 * 2 ** (rng.integers(0, 36, size=rng.integers(1, 4)) / 12)
                note = sum(
                    sum(
                        (rng.uniform(0.2, 1) / h) * np.sin(2 * np.pi * h * f0 * tt + rng.uniform(0, 6))
                        for h in range(1, 7)
                        if h * f0 < 0.45 * FS
                    )
                    for f0 in f0s
                )
                att = min(int(rng.uniform(0.002, 0.05) * FS), m // 2)
                env = np.exp(-tt / rng.uniform(0.05, 1.0))
                env[:att] *= np.linspace(0, 1, att)
                y[start : start + m] += note * env * rng.uniform(0.3, 1.0)
        if rng.random() < 0.4:
            start = int(t * FS)
            m = min(int(0.2 * FS), n - start)
            tt = np.arange(m) / FS
            burst = rng.standard_normal(m) * np.exp(-tt / rng.uniform(0.005, 0.05))
            sos = signal.butter(2, rng.uniform(300, 6000), "lowpass", fs=FS, output="sos")
            y[start : start + m] += signal.sosfilt(sos, burst) * rng.uniform(0.3, 1.5)
        t += dur
    return y


def random_ir(rng: np.random.Generator, rt60_s: float) -> np.ndarray:
    """A second IR family, so the model does not learn the library's one shape: two-band
    exponentially decaying noise (highs decaying 1-2.5x faster above a random 1-5 kHz split), random
    build-up and a random number of early reflections; energy-normalised."""
    n = int(min(1.5 * rt60_s, 6.0) * FS)
    t = np.arange(n) / FS
    split_hz = rng.uniform(1000.0, 5000.0)
    lo = signal.sosfilt(signal.butter(2, split_hz, "lowpass", fs=FS, output="sos"), rng.standard_normal(n))
    hi = signal.sosfilt(signal.butter(2, split_hz, "highpass", fs=FS, output="sos"), rng.standard_normal(n))
    rt_hi = rt60_s * rng.uniform(0.4, 1.0)
    ir = lo * 10 ** (-3.0 * t / rt60_s) + rng.uniform(0.3, 1.0) * hi * 10 ** (-3.0 * t / rt_hi)
    ir *= 1.0 - np.exp(-t / rng.uniform(0.0005, 0.02))
    n_refl = int(rng.integers(0, 25))
    if n_refl:
        at = (rng.uniform(0.001, 0.08, n_refl) * FS).astype(int)
        early_rms = np.sqrt(np.mean(ir[: int(0.05 * FS)] ** 2))
        ir[np.minimum(at, n - 1)] += rng.normal(0, 1, n_refl) * 3 * early_rms
    return ir / np.sqrt(np.sum(ir**2))


def make_example(
    dry: np.ndarray, rng: np.random.Generator, rt60_choices: np.ndarray, ir_cache: dict
) -> tuple[np.ndarray, float, float]:
    """Reverberant clip, its RT60 label (s) and DRR label (dB)."""
    n = int(CLIP_S * FS)
    start = int(rng.integers(0, max(len(dry) - n, 0) + 1))
    s = np.zeros(n)
    seg = dry[start : start + n]
    s[: len(seg)] = seg
    s /= np.sqrt(np.mean(s**2)) + 1e-12
    rt60 = float(rng.choice(rt60_choices))
    if rng.random() < 0.5:
        ir = random_ir(rng, rt60)
    else:
        kind = KINDS[int(rng.integers(0, 3))] if rt60 >= 0.8 else "room"
        key = ir_key(kind, rt60)
        if key not in ir_cache:
            ir_cache[key] = generate_ir(key, FS)[:, 0].astype(np.float64)
        ir = ir_cache[key]
    pre = int(rng.uniform(0.0, 0.04) * FS)
    wet = signal.fftconvolve(s, np.concatenate([np.zeros(pre), ir]))[:n]
    drr_target = rng.uniform(-8.0, 22.0)
    g = np.sqrt(np.sum(s**2) / (np.sum(wet**2) + 1e-12)) * 10 ** (-drr_target / 20)
    y = s + g * wet
    drr = 10 * np.log10(np.sum(s**2) / (np.sum((g * wet) ** 2) + 1e-12))
    y += rng.standard_normal(n) * np.sqrt(np.mean(y**2)) * 10 ** (rng.uniform(-75, -55) / 20)
    y *= 10 ** (rng.uniform(-30, -6) / 20) / (np.max(np.abs(y)) + 1e-12)
    return y, rt60, float(drr)


def build_set(sources: list[np.ndarray], per_source: int, rt60s: np.ndarray, seed: int):
    rng = np.random.default_rng(seed)
    cache: dict = {}
    X, Y, dsp = [], [], []
    for src in sources:
        for _ in range(per_source):
            y, rt60, drr = make_example(src, rng, rt60s, cache)
            f = reverb_features(y, FS)
            if f is None:
                continue
            X.append(f)
            Y.append([np.log(rt60), drr / 10.0])
            d = dsp_rt60_s(y, FS)
            dsp.append(np.nan if d is None else d)
    return np.array(X, np.float32), np.array(Y, np.float32), np.array(dsp)


def train_mlp(X: np.ndarray, Y: np.ndarray, *, epochs: int, seed: int, hidden: int = 64):
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    mu, sd = X.mean(axis=0), X.std(axis=0) + 1e-6
    Xt = torch.tensor((X - mu) / sd)
    Yt = torch.tensor(Y)
    net = torch.nn.Sequential(
        torch.nn.Linear(X.shape[1], hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, 2),
    )
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for _ in range(epochs):
        perm = torch.randperm(len(Xt))
        for i in range(0, len(Xt), 64):
            idx = perm[i : i + 64]
            loss = torch.nn.functional.smooth_l1_loss(net(Xt[idx]), Yt[idx], beta=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    layers = [m for m in net if isinstance(m, torch.nn.Linear)]
    weights = [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in layers]
    return mu.astype(np.float32), sd.astype(np.float32), weights


def to_onnx(mu: np.ndarray, sd: np.ndarray, weights: list, path: Path) -> None:
    """Write standardisation + MLP as an ONNX graph: input ``features`` (N, F), output ``y`` (N, 2)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [
        numpy_helper.from_array(mu, "mu"),
        numpy_helper.from_array((1.0 / sd).astype(np.float32), "inv_sd"),
    ]
    nodes = [
        helper.make_node("Sub", ["features", "mu"], ["c"]),
        helper.make_node("Mul", ["c", "inv_sd"], ["h0"]),
    ]
    cur = "h0"
    for i, (w, b) in enumerate(weights):
        inits += [
            numpy_helper.from_array(w.astype(np.float32), f"W{i}"),
            numpy_helper.from_array(b.astype(np.float32), f"b{i}"),
        ]
        nodes.append(helper.make_node("MatMul", [cur, f"W{i}"], [f"m{i}"]))
        if i == len(weights) - 1:
            nodes.append(helper.make_node("Add", [f"m{i}", f"b{i}"], ["y"]))
        else:
            nodes.append(helper.make_node("Add", [f"m{i}", f"b{i}"], [f"z{i}"]))
            nodes.append(helper.make_node("Relu", [f"z{i}"], [f"a{i}"]))
            cur = f"a{i}"
    graph = helper.make_graph(
        nodes,
        "reverb_blind",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", N_FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tonematch")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _errors(pred_rt60: np.ndarray, true_rt60: np.ndarray) -> dict:
    ok = np.isfinite(pred_rt60)
    rel = np.abs(pred_rt60[ok] - true_rt60[ok]) / true_rt60[ok]
    return {
        "rt60_mae_s": round(float(np.mean(np.abs(pred_rt60[ok] - true_rt60[ok]))), 4),
        "rt60_median_rel_err": round(float(np.median(rel)), 4),
        "rt60_within_25pct": round(float(np.mean(rel < 0.25)), 4),
        "n": int(ok.sum()),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=MODEL_DIR)
    ap.add_argument("--speech", type=int, default=40, help="speech sources (held-out: a quarter)")
    ap.add_argument("--music", type=int, default=40, help="music-like sources (held-out: a quarter)")
    ap.add_argument("--per-source", type=int, default=20, help="clips per source")
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        speech = speech_sources(rng, args.speech, Path(tmp))
    music = [music_source(rng, 20.0) for _ in range(args.music)]
    n_sp_test, n_mu_test = max(args.speech // 4, 1), max(args.music // 4, 1)
    train_src = speech[n_sp_test:] + music[n_mu_test:]
    test_src = speech[:n_sp_test] + music[:n_mu_test]
    # disjoint RT60 grids (2-decimal keys): train on even hundredths, test on odd ones
    grid = np.round(np.exp(np.linspace(np.log(0.2), np.log(4.0), 160)), 2)
    train_rt = np.unique(grid[(np.rint(grid * 100) % 2) == 0])
    test_rt = np.unique(grid[(np.rint(grid * 100) % 2) == 1])
    Xtr, Ytr, _ = build_set(train_src, args.per_source, train_rt, args.seed + 1)
    Xte, Yte, dsp_te = build_set(test_src, args.per_source, test_rt, args.seed + 2)
    t_data = time.time() - t0
    mu, sd, weights = train_mlp(Xtr, Ytr, epochs=args.epochs, seed=args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out_dir / f"{MODEL_NAME}.onnx"
    to_onnx(mu, sd, weights, onnx_path)

    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    pred = sess.run(["y"], {"features": Xte})[0]
    rt_true, drr_true = np.exp(Yte[:, 0]), Yte[:, 1] * 10
    rt_pred, drr_pred = np.exp(pred[:, 0]), pred[:, 1] * 10
    drr_const = float(np.mean(Ytr[:, 1] * 10))
    wet = drr_true < 6.0
    card = {
        "name": MODEL_NAME,
        "task": "blind RT60 (s) and direct-to-reverberant ratio (dB) of reverberant program material",
        "inputs": f"engine.estimators.reverb_features v{FEATURE_VERSION}: {N_FEATURES} float32",
        "outputs": ["ln(rt60_s)", "drr_db / 10"],
        "architecture": "standardise -> Linear(78,64) -> ReLU -> Linear(64,64) -> ReLU -> Linear(64,2)",
        "training_data": {
            "generated_by": "python -m engine.estimators.train_reverb",
            "speech_sources": f"{args.speech} espeak-ng utterances ({len(VOICES)} voices x variants, "
            "random speed 130-200 wpm and pitch)",
            "music_sources": f"{args.music} synthetic music-like signals (notes, chords, percussive "
            "bursts), 20 s",
            "clips": f"{CLIP_S:g} s at {FS} Hz, {args.per_source} per source, IR from engine.ir_library "
            "(room/plate/hall, RT60 0.2-4 s) or (half of them) a random two-band IR family, "
            "pre-delay 0-40 ms, DRR -8..+22 dB, noise floor -75..-55 dB",
            "split": "held-out = a quarter of the sources (distinct sentences/voices/music seeds) "
            "with IR RT60 "
            "values not used in training (odd vs even hundredths of a second)",
            "n_train": len(Xtr),
            "n_heldout": len(Xte),
            "seed": args.seed,
        },
        "heldout": {
            "learned": {
                **_errors(rt_pred, rt_true),
                "drr_mae_db": round(float(np.mean(np.abs(drr_pred - drr_true))), 3),
            },
            "dsp_rt60": _errors(dsp_te, rt_true),
            "constant_drr_mae_db": round(float(np.mean(np.abs(drr_const - drr_true))), 3),
            # where the reverb is clearly audible (DRR < 6 dB) RT60 is observable at all
            "wet_subset_drr_below_6db": {
                "learned": _errors(rt_pred[wet], rt_true[wet]),
                "dsp_rt60": _errors(dsp_te[wet], rt_true[wet]),
            },
        },
        "train_seconds": round(time.time() - t0, 1),
        "data_seconds": round(t_data, 1),
        "file_bytes": onnx_path.stat().st_size,
    }
    (args.out_dir / f"{MODEL_NAME}.json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card["heldout"], indent=2), f"\n{card['train_seconds']} s, {card['file_bytes']} bytes")
    return card


if __name__ == "__main__":
    main()
