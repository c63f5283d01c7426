"""A real dashboard server for tests: uvicorn on a free loopback port in a thread, with an operator
password, a reports directory, and its own kill-switch file."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from orderflow.dashboard.app import DashboardConfig, create_app
from orderflow.dashboard.auth import set_password

PASSWORD = "correct horse battery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tmp: Path, telemetry: Path | None = None, journal: Path | None = None) -> None:
        import uvicorn

        self.tmp = tmp
        self.telemetry = telemetry or tmp / "telemetry"
        self.kill_file = tmp / "kill-switch"
        self.password_file = tmp / "dashboard-password"
        set_password(PASSWORD, self.password_file)
        (tmp / "reports").mkdir()
        (tmp / "reports" / "backtest.html").write_text("<html><body><h1>backtest report</h1></body></html>")
        cfg = DashboardConfig(
            telemetry_url=str(self.telemetry),
            journal_url=str(journal or tmp / "journal.sqlite"),
            reports=[tmp / "reports"],
            kill_file=self.kill_file,
            password_file=self.password_file,
        )
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(cfg), host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the dashboard did not start"
            time.sleep(0.05)

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=5) as r:
            return json.loads(r.read())

    def post(self, path: str, body: dict, headers: dict | None = None) -> tuple[int, dict, str]:
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read()), r.headers.get("set-cookie", "")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read()), ""

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
