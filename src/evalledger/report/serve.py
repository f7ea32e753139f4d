"""``evalledger view``: the report served on 127.0.0.1, regenerated as the ledger changes.

A thread checks the ledger's version each second: HEAD's commit and the size and
modification time of every file under ``metrics/`` and ``runs/``, of dvc.lock and of
params.yaml. When it changes (a cell finished, a run was committed), the page is built
again; the page asks ``/version`` each second and reloads itself when it differs. Only
127.0.0.1 is bound, on a free port unless one is given.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from evalledger.project import Project

__all__ = ["ReportServer", "ledger_version"]


def ledger_version(project: Project) -> str:
    """A fingerprint of everything the report reads; it changes when the ledger does."""
    digest = hashlib.sha256()
    head = subprocess.run(["git", "rev-parse", "-q", "--verify", "HEAD"], cwd=project.root,
                          capture_output=True, text=True, check=False).stdout.strip()  # fmt: skip
    digest.update(head.encode())
    root = project.root
    files = [root / "dvc.lock", root / "params.yaml"]
    for folder in (root / "metrics", root / "runs"):
        if folder.is_dir():
            files += sorted(p for p in folder.rglob("*") if p.is_file())
    for path in files:
        try:
            st = path.stat()
        except OSError:
            continue
        digest.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


class ReportServer:
    """The live report of one project; :meth:`start`, then :meth:`stop`."""

    def __init__(self, project: Project, build: Callable[[], str], port: int = 0,
                 interval: float = 1.0) -> None:  # fmt: skip
        self.project = project
        self.build = build
        self.interval = interval
        self.version = ledger_version(project)
        self.html = build()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/version":
                    self._send("application/json", json.dumps({"version": server.version}))
                elif self.path.split("?")[0] in ("/", "/index.html", "/report.html"):
                    with server._lock:
                        self._send("text/html; charset=utf-8", server.html)
                else:
                    self.send_error(404)

            def _send(self, kind: str, body: str) -> None:
                data = body.encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return  # the terminal shows the URL and errors, not every request

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        """Where the page is served."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            version = ledger_version(self.project)
            if version == self.version:
                continue
            try:
                html = self.build()
            except Exception:
                continue
            with self._lock:
                self.html, self.version = html, version

    def start(self) -> None:
        """Serve and watch in background threads."""
        threading.Thread(target=self.httpd.serve_forever, name="evalledger-view",
                         daemon=True).start()  # fmt: skip
        threading.Thread(target=self._watch, name="evalledger-view-watch", daemon=True).start()

    def stop(self) -> None:
        """Stop serving and watching."""
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
