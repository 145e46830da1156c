"""Console speed figures (printed, never asserted): first paint on loopback against a real
`create_app` service, and the plot render time of a 60-minute job (every series at the service's
2000-point cap). Run: .venv/bin/python -m tests.console.bench_console"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.console.conftest import CHROMIUM, CHROMIUM_ARGS, LAPTOP, start_service, stop_service
from tests.console.mock_api import BASE, MockApi, synthetic_viz

PAINT_JS = """() => {
  const p = Object.fromEntries(performance.getEntriesByType('paint').map(e => [e.name, e.startTime]));
  const n = performance.getEntriesByType('navigation')[0];
  return {fp: p['first-paint'], fcp: p['first-contentful-paint'], dcl: n.domContentLoadedEventEnd,
          load: n.loadEventEnd}; }"""


def main(runs: int = 7) -> None:
    with tempfile.TemporaryDirectory() as d, sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        svc = start_service(Path(d))
        try:
            for label, warm in (("cold (new browser context each run)", False), ("warm (cached)", True)):
                fcps, loads = [], []
                ctx = b.new_context(viewport=LAPTOP)
                for _ in range(runs):
                    if not warm:
                        ctx.close()
                        ctx = b.new_context(viewport=LAPTOP)
                    page = ctx.new_page()
                    page.goto(svc.url + "/", wait_until="load")
                    page.wait_for_selector("#view-login:not([hidden])")
                    t = page.evaluate(PAINT_JS)
                    fcps.append(t["fcp"])
                    loads.append(t["load"])
                    page.close()
                ctx.close()
                print(f"first contentful paint, {label}: median {statistics.median(fcps):.0f} ms, "
                      f"max {max(fcps):.0f} ms; load event median {statistics.median(loads):.0f} ms "
                      f"({runs} runs, {svc.url})")
        finally:
            stop_service(svc)

        renders = []
        for _ in range(runs):
            ctx = b.new_context(viewport=LAPTOP)
            page = ctx.new_page()
            api = MockApi(viz=synthetic_viz(3600.0, 2000))
            api.install(page)
            page.goto(BASE + "/")
            page.get_by_label("Email").fill("a@example.com")
            page.get_by_label("Password").fill("right")
            page.get_by_role("button", name="Log in").click()
            page.wait_for_selector("#view-new:not([hidden])")
            api.jobs["job1"] = {"job_id": "job1", "mode": "A", "status": "PENDING", "progress": 0, "polls": 0}
            api.polls_to_finish = 0
            page.goto(BASE + "/#/jobs/job1")
            page.wait_for_selector("#plots[data-rendered='5']")
            t = page.evaluate("window.tonematch.timings.viz")
            renders.append((t["render_ms"], t["fetch_ms"], t["points"], t["paint_ms"]))
            ctx.close()
        med = statistics.median(r[0] for r in renders)
        print(f"60-minute job plots: {renders[0][2]} points in 5 SVG plots, build median {med:.1f} ms, "
              f"max {max(r[0] for r in renders):.1f} ms; data-to-screen (build+layout+paint) median "
              f"{statistics.median(r[3] for r in renders):.1f} ms, max {max(r[3] for r in renders):.1f} ms; "
              f"JSON fetch+parse median {statistics.median(r[1] for r in renders):.1f} ms ({runs} runs)")
        b.close()


if __name__ == "__main__":
    main()
