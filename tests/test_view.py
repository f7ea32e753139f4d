"""``evalledger view``: the report served on 127.0.0.1, opened in headless Chromium.

The page loads with no console error and no request beyond its own origin; after a
new run is committed (by another process) the page reloads itself with the new
commit's results; Ctrl-C (SIGINT) stops the server cleanly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import git, invoke, make_project
from test_report import CHROMIUM


def test_view_serves_the_report_and_follows_a_new_commit(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    project = make_project(tmp_path / "proj")
    assert invoke(project, "run", "--commit").exit_code == 0
    evalledger = str(Path(sys.executable).parent / "evalledger")
    server = subprocess.Popen([evalledger, "view"], cwd=project.root, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("serving http://127.0.0.1:"), line
        url = line.split()[1]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            errors: list[str] = []
            requests: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url)
            page.wait_for_function(
                "document.querySelectorAll('#chart-heatmap svg .mark-rect path').length > 0"
            )
            before = git(project.root, "rev-parse", "--short=10", "HEAD").strip()
            assert before in page.text_content("header")
            # another process runs and commits: the page follows by itself
            run = subprocess.run(
                [evalledger, "run", "-S", "models.noisy.error_rate=0.6", "--commit"],
                cwd=project.root, capture_output=True, text=True,
            )  # fmt: skip
            assert run.returncode == 0, run.stderr
            after = git(project.root, "rev-parse", "--short=10", "HEAD").strip()
            assert after != before
            deadline = time.monotonic() + 30  # polled from here: the page's CSP has no eval
            while after not in (page.text_content("header") or ""):
                assert time.monotonic() < deadline, "the page did not follow the new commit"
                time.sleep(0.2)
            marks = "#chart-heatmap svg .mark-rect path"
            while not page.eval_on_selector_all(marks, "e => e.length"):
                assert time.monotonic() < deadline, "the reloaded page drew no chart"
                time.sleep(0.2)
            browser.close()
        assert errors == []
        assert all(r.startswith(url) for r in requests), requests
    finally:
        server.send_signal(signal.SIGINT)
        try:
            out, err = server.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert server.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err
    assert not os.path.exists(project.root / "report.html")  # served, not written
