"""Service benchmark: a job through the local API vs ``tonematch match``, and GET /jobs/{id} latency
under load while renders run.

    .venv/bin/python bench/service_bench.py [--duration-s 240] [--rate 200] [--load-s 20] [--workers N]
    .venv/bin/python bench/service_bench.py --duration-s 3600 --skip-load      # the 60-minute job

1. Writes a deterministic reference/target pair of ``--duration-s`` seconds (engine.examples; past
   ``--tile-s`` seconds the pair is that long a pair looped, written streaming, so the bench's own
   memory stays small for an hour of audio).
2. Times ``tonematch match REF TGT -o out.wav`` (a subprocess, like a user runs it).
3. Starts ``tonematch serve`` (fresh data dir, SQLite, local store; rate limit raised so the load
   test measures latency, not throttling), adds a user, logs in, signs and PUTs both files, creates a
   job, polls it (every 50 ms) to COMPLETED and downloads the result. Prints the job time (POST /jobs →
   COMPLETED) and the whole round trip (first upload → download done), and their ratio to the CLI
   time. With ``--step-timings`` the server logs at INFO and the runner's per-step wall/CPU seconds
   of the job are printed (the API's access log is then on too, which costs the load test a little).
4. Unless ``--skip-load``: starts a second job (other options, so it is not the same job) and,
   while it renders, sends ``--rate`` GET /jobs/{id} per second for ``--load-s`` seconds from an
   open-loop asyncio client on keep-alive loopback connections; prints p50/p95/p99/max latency
   (measured from each request's scheduled send time, so client-side queueing counts against the
   server) and errors.
5. It samples the RSS and CPU time of the server and of each of its render processes during the first
   job (every ``--sample-s``): peak RSS per process and of the whole tree, RSS at each quarter of the
   job (flat memory shows as equal quarters), CPU seconds, average busy cores; the peak RSS of
   ``tonematch match`` comes from its rusage. It times ``tonematch match`` again after the job, so a
   busy shared machine shows up in the figures instead of skewing the ratio.

Everything runs on this machine; nothing is downloaded. Figures go to stdout (and ``--json`` file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench password 123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_and_cpu(pids: list[int]) -> tuple[float, float]:
    """Total RSS in MiB and CPU seconds (user+system) of ``pids``."""
    page = os.sysconf("SC_PAGE_SIZE")
    tick = os.sysconf("SC_CLK_TCK")
    rss = cpu = 0.0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / tick
        rss += int(fields[21]) * page / 2**20
    return rss, cpu


def proc_kind(pid: int) -> str:
    """``server``-side label of a process from its command line."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "gone"
    if "resource_tracker" in cmd:
        return "resource-tracker"
    if "multiprocessing" in cmd:
        return "render"
    return "other"


class Sampler(threading.Thread):
    """Every ``interval_s``: per process of ``pid``'s tree, (RSS MiB, CPU s)."""

    def __init__(self, pid: int, interval_s: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval_s = interval_s
        self.samples: list[tuple[float, dict[int, tuple[float, float]]]] = []
        self.stop_flag = threading.Event()

    def sample(self) -> None:
        self.samples.append((time.time(), {p: rss_and_cpu([p]) for p in proc_tree(self.pid)}))

    def run(self) -> None:
        self.sample()
        while not self.stop_flag.wait(self.interval_s):
            self.sample()

    def figures(self) -> dict:
        """Peak RSS per process and of the tree, RSS quarters, CPU seconds, busy cores."""
        if len(self.samples) < 2:
            return {}
        t0, first = self.samples[0]
        t1, last = self.samples[-1]
        wall = t1 - t0
        procs = {}
        for pid in sorted({p for _, d in self.samples for p in d}):
            series = [(t, d[pid]) for t, d in self.samples if pid in d]
            rss = [v[0] for _, v in series]
            if max(rss) == 0:
                continue
            name = "server" if pid == self.pid else f"{proc_kind(pid)}-{pid}"
            quarters = []
            for q in (0.25, 0.5, 0.75, 1.0):
                upto = [v[0] for t, v in series if t <= t0 + q * wall + 1e-9]
                quarters.append(round(max(upto), 1) if upto else None)
            procs[name] = {
                "peak_rss_mib": round(max(rss), 1),
                "rss_by_quarter_mib": quarters,
                "cpu_s": round(series[-1][1][1] - (first.get(pid, (0.0, 0.0))[1]), 2),
            }
        tree = [sum(v[0] for v in d.values()) for _, d in self.samples]
        cpu = sum(v[1] for v in last.values()) - sum(v[1] for p, v in first.items() if p in last)
        return {
            "processes": procs,
            "server_tree_peak_rss_mib": round(max(tree), 1),
            "server_tree_cpu_s": round(cpu, 2),
            "sampled_wall_s": round(wall, 2),
            "cores_busy_avg": round(cpu / wall, 2) if wall > 0 else None,
        }


def run_cli_match(ref: str, tgt: str, out: str) -> tuple[float, float, float]:
    """Wall and CPU seconds (the child's rusage) and peak RSS in MiB of ``tonematch match``. The peak
    is the child's own VmHWM, polled from /proc: rusage's ru_maxrss of a child counts the bench's
    memory it was forked from (the generated audio), not the command's."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "match", ref, tgt, "-o", out, "--quiet"], cwd=ROOT
    )
    peak_kib = 0
    while proc.poll() is None:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kib = max(peak_kib, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"tonematch match failed ({proc.returncode})")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), peak_kib / 1024


def start_server(data: Path, port: int, workers: int | None, log_level: str = "warning",
                 log_path: Path | None = None) -> subprocess.Popen:
    env = {
        **os.environ,
        "TONEMATCH_RATE_LIMIT_PER_S": "100000",
        "TONEMATCH_RATE_BURST": "100000",
        "PYTHONPATH": str(ROOT),
    }
    cmd = [
        sys.executable,
        "-m",
        "functions.cli",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data),
        "--log-level",
        log_level,
        "--no-drop-watch",
    ]
    if workers:
        cmd += ["--workers", str(workers)]
    stderr = open(log_path, "w") if log_path else None  # noqa: SIM115 (the server holds it)
    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=stderr
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


def upload(client: httpx.Client, h: dict, path: str) -> str:
    doc = client.post("/uploads/sign", json={"content_type": "audio/wav", "ext": "wav"}, headers=h).json()
    with open(path, "rb") as f:
        r = httpx.put(doc["put_url"], content=f, headers={"Content-Type": "audio/wav"}, timeout=300)
    r.raise_for_status()
    return doc["key"]


def wait_status(
    client: httpx.Client,
    h: dict,
    job_id: str,
    want: tuple[str, ...],
    poll_s: float = 0.05,
    timeout_s: float = 3600,
) -> dict:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        view = client.get(f"/jobs/{job_id}", headers=h).json()
        if view["status"] in want or view["status"] == "FAILED":
            return view
        time.sleep(poll_s)
    raise SystemExit(f"job {job_id} timed out")


async def load(port: int, path: str, token: str, rate: float, seconds: float) -> dict:
    """Open-loop GETs at ``rate``/s over keep-alive connections; latency from scheduled send time."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        "Accept: application/json\r\n\r\n"
    ).encode()
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    error_kinds: dict[str, int] = {}

    async def one(scheduled: float) -> None:
        nonlocal errors
        reused = bool(idle)
        conn = idle.pop() if idle else await asyncio.open_connection("127.0.0.1", port)
        for attempt in range(2):
            reader, writer = conn
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                code = int(head.split(b" ", 2)[1])
                latencies.append(time.perf_counter() - scheduled)
                if code != 200:
                    errors += 1
                    error_kinds[f"HTTP {code}"] = error_kinds.get(f"HTTP {code}", 0) + 1
                else:
                    st = json.loads(body).get("status", "other")
                    statuses[st] = statuses.get(st, 0) + 1
                idle.append(conn)
                return
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                writer.close()
                closed_idle = isinstance(exc, asyncio.IncompleteReadError) and not exc.partial
                if attempt == 0 and reused and closed_idle:
                    # the server closed this kept-alive connection while it sat idle (its keep-alive
                    # timeout): like any HTTP client, send again on a new connection (the latency
                    # still counts from the scheduled time)
                    conn = await asyncio.open_connection("127.0.0.1", port)
                    continue
                errors += 1
                error_kinds[type(exc).__name__] = error_kinds.get(type(exc).__name__, 0) + 1
                return

    n = int(rate * seconds)
    t0 = time.perf_counter() + 0.05
    tasks = []
    for i in range(n):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    for _, w in idle:
        w.close()
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return 1000 * lat[min(len(lat) - 1, int(p / 100 * len(lat)))] if lat else float("nan")

    return {
        "requests": n,
        "ok": sum(statuses.values()),
        "errors": errors,
        "error_kinds": error_kinds,
        "achieved_rps": round(len(lat) / elapsed, 1),
        "p50_ms": round(pct(50), 2),
        "p95_ms": round(pct(95), 2),
        "p99_ms": round(pct(99), 2),
        "max_ms": round(1000 * lat[-1], 2) if lat else None,
        "mean_ms": round(1000 * statistics.fmean(lat), 2) if lat else None,
        "job_status_seen": statuses,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration-s", type=float, default=240.0, help="length of the test audio (default 240)")
    ap.add_argument("--rate", type=float, default=200.0, help="GET /jobs/{id} per second (default 200)")
    ap.add_argument("--load-s", type=float, default=20.0, help="seconds of load (default 20)")
    ap.add_argument("--workers", type=int, default=None, help="render processes (default: one per core)")
    ap.add_argument("--workdir", default=None, help="keep files here (default: a temp dir, removed)")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    ap.add_argument("--skip-load", action="store_true", help="no second job / GET load test")
    ap.add_argument("--step-timings", action="store_true", help="server logs at INFO: print per-step timings")
    ap.add_argument(
        "--tile-s", type=float, default=600.0, help="longer pairs loop a pair this long (default 600)"
    )
    ap.add_argument("--sample-s", type=float, default=0.25, help="RSS/CPU sampling interval (default 0.25)")
    args = ap.parse_args(argv)

    work = Path(args.workdir or tempfile.mkdtemp(prefix="tonematch-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    figures: dict = {"duration_s": args.duration_s, "cpu_count": os.cpu_count()}
    pair = write_pair(work / "pair", args.duration_s, args.tile_s)
    print(f"audio: {args.duration_s:.0f} s stereo 44.1 kHz pair in {work / 'pair'}", flush=True)

    cli_s, cli_cpu_s, cli_rss = run_cli_match(pair["reference"], pair["target"], str(work / "cli.wav"))
    figures.update(
        cli_match_s=round(cli_s, 2),
        cli_match_cpu_s=round(cli_cpu_s, 2),
        cli_match_peak_rss_mib=round(cli_rss, 1),
        loadavg_before=os.getloadavg()[0],
    )
    print(
        f"tonematch match: {cli_s:.2f} s wall, {cli_cpu_s:.2f} s CPU, peak RSS {cli_rss:.0f} MiB "
        f"(load average {os.getloadavg()[0]:.1f})",
        flush=True,
    )

    port = free_port()
    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "functions.cli",
            "users",
            "add",
            "bench@example.com",
            "--password",
            PASSWORD,
            "--data-dir",
            str(data),
        ],
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    log_path = work / "server.log"
    server = start_server(
        data, port, args.workers, "info" if args.step_timings else "warning", log_path
    )
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
        tokens = client.post("/auth/login", json={"email": "bench@example.com", "password": PASSWORD}).json()
        h = {"Authorization": f"Bearer {tokens['access_token']}"}
        sampler = Sampler(server.pid, args.sample_s)
        sampler.start()
        t_upload = time.perf_counter()
        ref, tgt = upload(client, h, pair["reference"]), upload(client, h, pair["target"])
        t_create = time.perf_counter()
        job_id = client.post("/jobs", json={"mode": "A", "ref_key": ref, "tgt_key": tgt}, headers=h).json()[
            "job_id"
        ]
        view = wait_status(client, h, job_id, ("COMPLETED",))
        t_done = time.perf_counter()
        if view["status"] != "COMPLETED":
            raise SystemExit(f"job failed: {view['error']}")
        (work / "api.wav").write_bytes(httpx.get(view["download_url"], timeout=300).content)
        t_dl = time.perf_counter()
        sampler.stop_flag.set()
        sampler.join()
        figures.update(sampler.figures())
        job_s, total_s = t_done - t_create, t_dl - t_upload
        # the machine may be shared: time `match` again right after and compare with the mean
        cli2_s, cli2_cpu_s, cli2_rss = run_cli_match(
            pair["reference"], pair["target"], str(work / "cli2.wav")
        )
        figures.update(
            cli_match_again_s=round(cli2_s, 2),
            cli_match_again_cpu_s=round(cli2_cpu_s, 2),
            cli_match_again_peak_rss_mib=round(cli2_rss, 1),
            loadavg_after=os.getloadavg()[0],
        )
        cli_s = (cli_s + cli2_s) / 2
        figures.update(
            api_job_s=round(job_s, 2),
            api_round_trip_s=round(total_s, 2),
            ratio_job=round(job_s / cli_s, 3),
            ratio_round_trip=round(total_s / cli_s, 3),
        )
        import numpy as np
        import soundfile as sf

        a = sf.read(work / "api.wav", dtype="float64")[0]
        b = sf.read(work / "cli.wav", dtype="float64")[0]
        if a.shape == b.shape:
            figures["api_vs_cli_max_diff_db"] = round(20 * np.log10(max(np.abs(a - b).max(), 1e-12)), 1)
        print(
            f"API job: {job_s:.2f} s (POST /jobs -> COMPLETED), round trip {total_s:.2f} s "
            f"(upload -> download); ratio to match: {job_s / cli_s:.2f}x / {total_s / cli_s:.2f}x; "
            f"API vs CLI audio max diff {figures.get('api_vs_cli_max_diff_db')} dB",
            flush=True,
        )

        if args.step_timings:
            figures["runner_log"] = runner_lines(log_path)
            for line in figures["runner_log"]:
                print(line, flush=True)
        if args.skip_load:
            return_figures(figures, args)
            return 0
        # latency under load while a second job renders
        job2 = client.post(
            "/jobs", json={"mode": "A", "ref_key": ref, "tgt_key": tgt, "opts": {"intensity": 0.9}}, headers=h
        ).json()["job_id"]
        wait_status(client, h, job2, ("RENDERING", "COMPLETED"), poll_s=0.05)
        result = asyncio.run(load(port, f"/jobs/{job2}", tokens["access_token"], args.rate, args.load_s))
        figures["get_job_load"] = {"rate_rps": args.rate, "seconds": args.load_s, **result}
        print(
            f"GET /jobs/{{id}} at {args.rate:.0f}/s for {args.load_s:.0f} s while rendering: "
            f"p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms, "
            f"max {result['max_ms']} ms, errors {result['errors']}, achieved {result['achieved_rps']}/s, "
            f"job status seen {result['job_status_seen']}",
            flush=True,
        )
        wait_status(client, h, job2, ("COMPLETED",))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return_figures(figures, args)
    return 0


def return_figures(figures: dict, args: argparse.Namespace) -> None:
    print(json.dumps(figures, indent=2), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


def runner_lines(log_path: Path) -> list[str]:
    """The runner's per-job summary lines from the server's log."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return []
    return [line.split("tonematch.runner: ", 1)[-1] for line in text.splitlines() if "runner: job " in line]


def write_pair(folder: Path, duration_s: float, tile_s: float) -> dict[str, str]:
    """The example pair of ``duration_s``; past ``tile_s`` a ``tile_s`` pair looped into the files
    block by block (memory flat)."""
    import soundfile as sf

    from engine.examples import write_example_pair

    if duration_s <= tile_s:
        return write_example_pair(folder, duration_s=duration_s)
    tile = write_example_pair(folder / "tile", duration_s=tile_s)
    out = {}
    for name, path in tile.items():
        dst = folder / Path(path).name
        with sf.SoundFile(path) as src:
            rate, channels, subtype = src.samplerate, src.channels, src.subtype
        need = round(duration_s * rate)
        with sf.SoundFile(dst, "w", rate, channels, subtype) as w:
            while need > 0:
                for block in sf.blocks(path, blocksize=1 << 18, dtype="float32", always_2d=True):
                    block = block[:need]
                    w.write(block)
                    need -= block.shape[0]
                    if need <= 0:
                        break
        out[name] = str(dst)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
