#!/usr/bin/env python3
"""Screenshots of every view of ``evalledger report``, for a reviewer to look at.

Writes the report of a project (default: this repository's demo ledger) and opens it
in headless Chromium (Debian's ``chromium``, driven by playwright), then saves one
full-page PNG per view (Overview, History, Breakdown, Items, Side by side, Training or
Diff when the page has them) into ``--out`` (default: ``report-shots/``). Prints each
file with the console errors the page logged (there should be none).

    python benchmarks/report_shots.py [--project .] [--base REV] [--out report-shots]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--project", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--base", default=None, help="Also a Diff view against this revision.")
    ap.add_argument("--out", type=Path, default=Path("report-shots"))
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    evalledger = shutil.which("evalledger", path=str(Path(sys.executable).parent)) or "evalledger"
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        page_file = Path(tmp) / "report.html"
        cmd = [evalledger, "report", "-o", str(page_file)]
        if args.base:
            cmd += ["--base", args.base]
        done = subprocess.run(cmd, cwd=args.project, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return 1
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_file.as_uri())
            page.wait_for_selector("#chart-heatmap svg")
            views = page.eval_on_selector_all("nav button", "b => b.map(x => x.dataset.view)")
            for view in views:
                page.click(f"nav button[data-view={view}]")
                page.wait_for_timeout(400)  # charts of a view drawn when it shows
                shot = args.out / f"{view}.png"
                page.screenshot(path=str(shot), full_page=True)
                print(f"{shot}  ({shot.stat().st_size / 1024:.0f} KiB)")
            browser.close()
    print(f"console errors: {errors or 'none'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
