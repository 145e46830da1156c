"""Run Matchering 2.0 on a list of jobs, inside bench/.venv-matchering (not the project venv).

    bench/.venv-matchering/bin/python bench/matchering_batch.py jobs.json results.json

``jobs.json``: ``[{"id", "target", "reference", "out"}, ...]``; each job is
``mg.process(target=..., reference=..., results=[mg.pcm24(out)])`` with Matchering's defaults.
``results.json``: ``{id: {"ok": bool, "seconds": float, "error": str | None}}``. One failing job does not
stop the others. Standalone on purpose: it must not import tonematch or the bench package.
"""

from __future__ import annotations

import json
import sys
import time


def main(jobs_path: str, results_path: str) -> int:
    import matchering as mg

    mg.log(warning_handler=lambda *_: None, info_handler=lambda *_: None)
    with open(jobs_path) as fh:
        jobs = json.load(fh)
    results: dict[str, dict] = {}
    for job in jobs:
        t0 = time.perf_counter()
        try:
            mg.process(target=job["target"], reference=job["reference"], results=[mg.pcm24(job["out"])])
            results[job["id"]] = {"ok": True, "seconds": time.perf_counter() - t0, "error": None}
        except Exception as exc:  # report and go on with the next job
            results[job["id"]] = {"ok": False, "seconds": time.perf_counter() - t0,
                                  "error": f"{type(exc).__name__}: {exc}"}
        print(f"matchering {job['id']}: {results[job['id']]}", file=sys.stderr, flush=True)
    with open(results_path, "w") as fh:
        json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
