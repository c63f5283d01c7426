"""The dashboard's web server: FastAPI over the engines' telemetry and the journal.

- ``GET /`` the page (static files, vendored JavaScript, no build step);
- ``GET /api/runs`` every run the telemetry or the journal knows, with its status (running, down,
  stopped, crashed);
- ``GET /api/runs/{id}`` a run's snapshot (live state) and its journal history;
- ``GET /api/stream?runs=1,2`` server-sent events: a ``snapshot`` per run, then ``events`` batches as
  they arrive and a ``status`` message whenever a run's status changes (an engine whose heartbeats
  stop shows ``down`` within ``down_after_s``);
- ``GET /api/reports`` and ``/reports/{i}/{path}`` the HTML reports of ``--reports`` directories;
- ``POST /api/login``, ``/api/logout``, ``GET /api/session`` and ``POST /api/control/kill`` (operator
  password, session cookie, CSRF header and the password again; see :mod:`.auth`).

One background task follows the telemetry (every ``poll_s``) and fans events out to the subscribed
browsers. A browser that falls behind by ``QUEUE_MAX`` batches is dropped and reconnects to a fresh
snapshot, so a slow client never slows the others, and nothing here can reach an engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from orderflow.dashboard import auth as A
from orderflow.dashboard.history import History
from orderflow.dashboard.state import RunView
from orderflow.engine.control import read_control, write_control
from orderflow.telemetry.bus import Reader, open_reader
from orderflow.telemetry.schema import SchemaError, to_builtins

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
QUEUE_MAX = 400
_json = msgspec.json.Encoder()


@dataclass
class DashboardConfig:
    telemetry_url: str
    journal_url: str | None = None
    reports: list[Path] = field(default_factory=list)
    kill_file: Path | None = None
    password_file: Path | None = None
    poll_s: float = 0.025
    down_after_s: float = 3.5


class Hub:
    """Follows every run's telemetry and fans it out to subscribers."""

    def __init__(self, reader: Reader, down_after_s: float) -> None:
        self.reader = reader
        self.down_after_s = down_after_s
        self.views: dict[int, RunView] = {}
        self.subscribers: dict[asyncio.Queue[bytes], set[int]] = {}
        self._status: dict[int, str] = {}
        self._last_discovery = 0.0
        self.errors = 0

    def view(self, run_id: int) -> RunView:
        v = self.views.get(run_id)
        if v is None:
            v = self.views[run_id] = RunView(run_id, down_after_s=self.down_after_s)
        return v

    def _send(self, runs: set[int] | None, message: dict[str, Any]) -> None:
        frame = b"data: " + _json.encode(message) + b"\n\n"
        for q, wanted in list(self.subscribers.items()):
            if runs is not None and wanted and not (wanted & runs):
                continue
            if q.qsize() >= QUEUE_MAX:
                self.subscribers.pop(q, None)
                q.put_nowait(b"")  # tells the stream to end; the browser reconnects to a new snapshot
                continue
            q.put_nowait(frame)

    def poll(self) -> None:
        now = time.monotonic()
        if now - self._last_discovery > 1.0:
            self._last_discovery = now
            for run_id in self.reader.runs():
                self.view(run_id)
        for run_id, view in self.views.items():
            try:
                events = self.reader.read(run_id)
            except (SchemaError, OSError) as exc:
                self.errors += 1
                if self.errors == 1 or self.errors % 100 == 0:
                    log.warning("telemetry of run %d unreadable: %s", run_id, exc)
                continue
            if not events:
                continue
            rows = []
            for e in events:
                view.apply(e)
                rows.append(to_builtins(e))
            self._send(
                {run_id}, {"type": "events", "run_id": run_id, "events": rows, "sent_ms": time.time() * 1e3}
            )
        now_ns = time.time_ns()
        for run_id, view in self.views.items():
            st = view.status(now_ns)
            if self._status.get(run_id) != st:
                self._status[run_id] = st
                self._send(
                    {run_id},
                    {"type": "status", "run_id": run_id, "status": st, "overview": view.overview(now_ns)},
                )

    async def run(self, poll_s: float) -> None:
        while True:
            try:
                self.poll()
            except Exception:  # the follower must survive anything a run file holds
                log.exception("dashboard telemetry poll failed")
            await asyncio.sleep(poll_s)


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def create_app(cfg: DashboardConfig) -> FastAPI:
    hub = Hub(open_reader(cfg.telemetry_url), cfg.down_after_s)
    history = History(cfg.journal_url)
    guard = A.Guard(A.load_hash(cfg.password_file))

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(hub.run(cfg.poll_s))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            history.close()
            hub.reader.close()

    app = FastAPI(title="orderflow dashboard", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.hub = hub
    app.state.guard = guard
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Response:
        resp: Response = await call_next(request)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        return resp

    @app.get("/", response_class=HTMLResponse)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    def _runs() -> list[dict[str, Any]]:
        now_ns = time.time_ns()
        out: dict[int, dict[str, Any]] = {}
        for row in history.runs():
            status = "stopped" if row["stopped_ns"] else "crashed"
            out[row["id"]] = {
                "run_id": row["id"],
                "mode": row["mode"],
                "venue": row["venue"],
                "symbols": row["symbols"].split(",") if row["symbols"] else [],
                "status": status,
                "started_ns": row["started_ns"],
                "stop_reason": row["stop_reason"],
            }
        for run_id, view in hub.views.items():
            ov = view.overview(now_ns)
            base = out.get(run_id, {})
            status = ov["status"]
            if status == "unknown":
                status = base.get("status", "unknown")
            elif status == "down" and base.get("status") == "stopped":
                status = "stopped"
            out[run_id] = {
                **base,
                **{k: v for k, v in ov.items() if v not in (None, "", [])},
                "status": status,
            }
        return [out[k] for k in sorted(out, reverse=True)]

    @app.get("/api/runs")
    def runs() -> JSONResponse:
        return JSONResponse({"runs": _runs(), "controls_enabled": guard.enabled})

    @app.get("/api/runs/{run_id}")
    def run(run_id: int) -> Response:
        now_ns = time.time_ns()
        live = hub.views[run_id].snapshot(now_ns) if run_id in hub.views else None
        body = {"run_id": run_id, "live": live, "history": history.run(run_id)}
        return Response(_json.encode(body), media_type="application/json")

    @app.get("/api/stream")
    async def stream(request: Request, runs: str = "") -> StreamingResponse:
        try:
            wanted = {int(x) for x in runs.split(",") if x.strip()}
        except ValueError:
            raise HTTPException(400, f"runs={runs!r}: give run ids separated by commas") from None
        q: asyncio.Queue[bytes] = asyncio.Queue()
        now_ns = time.time_ns()
        for run_id in sorted(wanted or hub.views):
            if run_id in hub.views:
                snap = {"type": "snapshot", "run_id": run_id, "state": hub.views[run_id].snapshot(now_ns)}
                q.put_nowait(b"data: " + _json.encode(snap) + b"\n\n")
        hub.subscribers[q] = wanted

        async def gen() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 1000\n\n"
                while True:
                    try:
                        frame = await asyncio.wait_for(q.get(), timeout=15.0)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    if not frame:
                        return
                    yield frame
                    if await request.is_disconnected():
                        return
            finally:
                hub.subscribers.pop(q, None)

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(gen(), media_type="text/event-stream", headers=headers)

    # -- reports ---------------------------------------------------------------------------------
    @app.get("/api/reports")
    def reports() -> JSONResponse:
        items: list[dict[str, Any]] = []
        for i, root in enumerate(cfg.reports):
            if not root.is_dir():
                continue
            for p in sorted(root.rglob("*.html")):
                st = p.stat()
                items.append(
                    {
                        "url": f"/reports/{i}/{p.relative_to(root).as_posix()}",
                        "name": p.relative_to(root).as_posix(),
                        "dir": str(root),
                        "modified_ns": st.st_mtime_ns,
                        "bytes": st.st_size,
                    }
                )
        items.sort(key=lambda r: r["modified_ns"], reverse=True)
        return JSONResponse({"reports": items})

    @app.get("/reports/{index}/{path:path}")
    def report_file(index: int, path: str) -> FileResponse:
        if not 0 <= index < len(cfg.reports):
            raise HTTPException(404, "no such report directory")
        root = cfg.reports[index].resolve()
        target = (root / path).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise HTTPException(404, f"no report {path!r}")
        return FileResponse(target)

    # -- control ---------------------------------------------------------------------------------
    @app.get("/api/session")
    def session(request: Request) -> JSONResponse:
        s = guard.session(request.cookies.get(A.COOKIE))
        return JSONResponse(
            {
                "enabled": guard.enabled,
                "logged_in": s is not None,
                "csrf": s.csrf if s else None,
                "who": s.who if s else None,
            }
        )

    @app.post("/api/login")
    async def login(request: Request) -> JSONResponse:
        body = await _body(request)
        client = _client(request)
        if not guard.enabled:
            raise HTTPException(403, "no operator password is set: run `orderflow dashboard --set-password`")
        if guard.throttled(client):
            raise HTTPException(429, "too many wrong passwords; wait a minute")
        if not guard.check(str(body.get("password", "")), client):
            raise HTTPException(401, "wrong password")
        who = str(body.get("who") or "operator")[:64]
        s = guard.login(f"{who}@{client}")
        resp = JSONResponse({"csrf": s.csrf, "who": s.who})
        resp.set_cookie(
            A.COOKIE,
            s.token,
            httponly=True,
            samesite="strict",
            max_age=A.SESSION_TTL_S,
            secure=request.url.scheme == "https",
        )
        return resp

    @app.post("/api/logout")
    def logout(request: Request) -> JSONResponse:
        guard.logout(request.cookies.get(A.COOKIE))
        resp = JSONResponse({"ok": True})
        resp.delete_cookie(A.COOKIE)
        return resp

    @app.post("/api/control/kill")
    async def kill(request: Request) -> JSONResponse:
        s = guard.session(request.cookies.get(A.COOKIE))
        if s is None:
            raise HTTPException(401, "log in first")
        if request.headers.get(A.CSRF_HEADER) != s.csrf:
            raise HTTPException(403, "missing or wrong CSRF token")
        body = await _body(request)
        client = _client(request)
        if guard.throttled(client):
            raise HTTPException(429, "too many wrong passwords; wait a minute")
        if not guard.check(str(body.get("password", "")), client):
            raise HTTPException(401, "wrong password: nothing changed")
        mode = str(body.get("mode", ""))
        why = str(body.get("why", "")).strip()[:500]
        if not why:
            raise HTTPException(400, "say why (the journal keeps it)")
        target = body.get("run_id", "all")
        run_id = None if target == "all" else int(target)
        try:
            path = write_control(mode, who=s.who, why=why, run_id=run_id, path=cfg.kill_file)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        log.warning("kill switch %s for %s by %s: %s", mode, target, s.who, why)
        effective = read_control(run_id, cfg.kill_file).mode if run_id is not None else mode
        return JSONResponse(
            {"ok": True, "mode": mode, "run": target, "effective": effective, "file": str(path)}
        )

    return app


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "the body is not a JSON object")
    return body
