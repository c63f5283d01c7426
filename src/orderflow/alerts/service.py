"""``orderflow alerts run``: the alerter, a process of its own beside the engines.

It follows every run's telemetry (the embedded files or Redis streams the engines publish to; nothing
connects to an engine, so an engine never waits for it and a dead alerter cannot stop one), evaluates
the rules and anomaly detectors (:mod:`orderflow.alerts.rules`), turns what they find into incidents
and messages (:mod:`orderflow.alerts.incidents`), journals every message before it is sent and
delivers it to the channels its severity routes to, one thread per channel with retries
(:mod:`orderflow.alerts.delivery`). It also sends the scheduled reports
(:mod:`orderflow.alerts.scheduler`) and, when configured, answers Telegram commands as the bot's one
poller (:mod:`orderflow.alerts.telegram`).

At start it replays the telemetry already written (``priming``: nothing is sent for the past), then
announces what is still wrong and resolves what was announced before a restart and has ended.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orderflow.alerts.config import AlertsConfig, resolve_channels, resolve_secret_text
from orderflow.alerts.delivery import Deliverer, check_channel_url
from orderflow.alerts.endpoints import set_endpoints
from orderflow.alerts.incidents import NS, Incidents
from orderflow.alerts.rules import Rules
from orderflow.alerts.scheduler import ReportScheduler, build_period, summary
from orderflow.alerts.store import AlertStore
from orderflow.engine.control import read_control, read_control_file, run_kill_file, write_control
from orderflow.telemetry.bus import Reader, open_reader

log = logging.getLogger(__name__)
BATCH = 10_000


@dataclass(frozen=True)
class Sources:
    """Where the alerter reads and writes: telemetry URL, journal URL, kill-switch file."""

    telemetry: str
    journal: str
    kill_file: str | None = None


def check_config(cfg: AlertsConfig) -> dict[str, str]:
    """The channels' URLs with their secrets, after checking every one (one line naming the channel:
    a missing secret, a URL apprise cannot read) and the endpoints."""
    set_endpoints(cfg.endpoints)
    urls = resolve_channels(cfg)
    for name, url in urls.items():
        check_channel_url(name, url)
    if cfg.telegram.enabled:
        resolve_secret_text(cfg.telegram.token, "telegram.token")
        if not cfg.telegram.chat_ids:
            raise ValueError(
                "telegram.enabled is true but telegram.chat_ids is empty: name the chats to answer"
            )
    return urls


class AlertService:
    """The alerter (module docstring). :meth:`step` does one cycle; :meth:`run` loops until stopped."""

    def __init__(
        self,
        cfg: AlertsConfig,
        src: Sources,
        *,
        channel_urls: dict[str, str] | None = None,
        reader: Reader | None = None,
        clock: Callable[[], int] = time.time_ns,
        reports_dir: Path | None = None,
    ) -> None:
        self.cfg = cfg
        self.src = src
        self.clock = clock
        urls = check_config(cfg) if channel_urls is None else channel_urls
        self.store = AlertStore.open(src.journal)
        self.deliverer = Deliverer(
            self.store, urls, cfg.retry, digest_s={n: c.digest_s for n, c in cfg.channels.items()}
        )
        self.incidents = Incidents(cfg, self.store, on_record=self.deliverer.kick, clock=clock)
        self.rules = Rules(cfg, self.incidents, kill_state=self._kill_state, clock=clock)
        self.reader = reader if reader is not None else open_reader(src.telemetry)
        self.scheduler = ReportScheduler(
            cfg, self.store, self.store.journal.engine.url.render_as_string(hide_password=False),
            out_dir=reports_dir, clock=clock, on_record=self.deliverer.kick,
        )  # fmt: skip
        self.bot: Any = None
        self._done: set[int] = set()  # runs stopped (or long dead): not read any more
        self._last_report_check = 0
        self._last_drift = clock()
        self.events = 0

    # -- the kill switch ---------------------------------------------------------------------------
    def _kill_state(self, run_id: int | None) -> tuple[str, str, str]:
        c = (
            read_control(None, self.src.kill_file)
            if run_id is None
            else read_control_file(run_kill_file(run_id, self.src.kill_file))
        )
        return c.mode, c.who, c.why

    # -- one cycle ---------------------------------------------------------------------------------
    def read(self) -> int:
        """Feed the rules every event written since the last call; returns how many."""
        n = 0
        for run_id in self.reader.runs():
            if run_id in self._done:
                continue
            while True:
                batch = self.reader.read(run_id, BATCH)
                for ev in batch:
                    self.rules.observe(ev)
                n += len(batch)
                if len(batch) < BATCH:
                    break
            r = self.rules.runs.get(run_id)
            if r is not None and r.stopped is not None:
                self._done.add(run_id)
        self.events += n
        return n

    def prime(self) -> int:
        """Replay what was written before this start without sending, then announce what holds now."""
        self.incidents.priming = True
        try:
            n = self.read()
            self.rules.tick(self.clock())
        finally:
            self.incidents.priming = False
        sent = self.incidents.sync(self.clock())
        log.info(
            "alerter: replayed %d events of %d runs; %d message(s) on start", n, len(self.rules.runs), sent
        )
        return n

    def step(self) -> int:
        """Read, evaluate, send; returns the messages written."""
        self.read()
        now = self.clock()
        self.rules.tick(now)
        sent = self.incidents.sync(now)
        R = self.cfg.rules.feature_drift
        if R.enabled and now - self._last_drift >= R.every_s * NS:
            self._last_drift = now
            self.drift(now)
            sent += self.incidents.sync(now)
        if now - self._last_report_check >= 10 * NS:
            self._last_report_check = now
            sent += len(self.scheduler.step(now))
        return sent

    def drift(self, now: int) -> int:
        """Compare each live run's recent model inputs (journaled by the engine) with its model
        version's first ones: one ``drift`` event per run and version for the rules. Returns how many."""
        from orderflow.journal.db import readonly_engine
        from orderflow.reports.build import input_drift
        from orderflow.telemetry.schema import FeatureDrift

        R = self.cfg.rules.feature_drift
        live = [r for r in self.rules.runs.values() if r.stopped is None and r.last_beat_ns]
        if not live:
            return 0
        n = 0
        engine = readonly_engine(self.scheduler.journal_url)
        try:
            with engine.connect() as conn:
                for r in live:
                    start = max(r.started_ns, now - int(R.window_s * NS))
                    out = input_drift(conn, start, now, r.run_id, R.reference)
                    for version, v in out["versions"].items():
                        feats = v.get("features")
                        if not feats:
                            continue
                        psi = tuple((f["name"], round(float(f["psi"]), 4)) for f in feats)
                        symbol = r.symbols[0] if r.symbols else ""
                        self.rules.observe(FeatureDrift(
                            run_id=r.run_id, ts_ns=now, symbol=symbol, psi=psi, samples=int(v["n_cur"]),
                            reference=f"{version}: its first {v['n_ref']} inputs",
                        ))  # fmt: skip
                        n += 1
        except Exception as exc:  # the journal busy or older than the engine: try at the next check
            log.warning("feature drift check failed: %s", exc)
        finally:
            engine.dispose()
        return n

    def start(self) -> None:
        self.deliverer.start()
        if self.cfg.telegram.enabled:
            self._start_bot()
        self.prime()

    def run(self, stop: threading.Event, max_s: float | None = None) -> None:
        """Cycle every ``poll_s`` until ``stop`` is set (or ``max_s`` has passed)."""
        self.start()
        end = None if max_s is None else time.monotonic() + max_s
        try:
            while not stop.is_set() and (end is None or time.monotonic() < end):
                try:
                    self.step()
                except Exception:  # one bad cycle (a database hiccup) must not end the alerter
                    log.exception("alerter cycle failed; going on")
                stop.wait(self.cfg.poll_s)
        finally:
            self.close()

    def close(self) -> None:
        if self.bot is not None:
            self._bot_stop.set()
            self._bot_thread.join(timeout=5)
        self.deliverer.stop(timeout=5.0)
        self.reader.close()
        self.store.close()

    # -- Telegram ----------------------------------------------------------------------------------
    def _start_bot(self) -> None:
        from orderflow.alerts.telegram import TelegramBot

        t = self.cfg.telegram
        base = self.cfg.endpoints.get("telegram", "https://api.telegram.org").rstrip("/")
        token = resolve_secret_text(t.token, "telegram.token")
        self.bot = TelegramBot(
            base, token, t.chat_ids, ServiceCommands(self), self.store, confirm_s=t.confirm_s,
            long_poll_s=t.long_poll_s,
        )  # fmt: skip
        self._bot_stop = threading.Event()
        self._bot_thread = threading.Thread(
            target=self.bot.run, args=(self._bot_stop,), name="telegram-poller", daemon=True
        )
        self._bot_thread.start()


class ServiceCommands:
    """What the Telegram commands answer, from the alerter's own view of the runs (it never asks an
    engine)."""

    def __init__(self, svc: AlertService) -> None:
        self.svc = svc

    def _live(self) -> list[Any]:
        now = self.svc.clock()
        return [
            r
            for r in self.svc.rules.runs.values()
            if r.stopped is None and r.last_beat_ns and now - r.last_beat_ns < 3600 * NS
        ]

    def status(self) -> str:
        now = self.svc.clock()
        lines = []
        kill = read_control(None, self.svc.src.kill_file)
        lines.append(f"kill switch (all runs): {kill.mode}" + (f" by {kill.who}" if kill.who else ""))
        for r in sorted(self._live(), key=lambda r: r.run_id):
            age = (now - r.last_beat_ns) / NS
            eq = "n/a" if r.equity is None else f"{r.equity:,.2f}"
            lines.append(
                f"run {r.run_id} {r.mode} {','.join(r.symbols)}: {r.engine_state or 'unknown'}, heartbeat "
                f"{age:.1f} s ago, equity {eq}, day PnL {r.day_pnl:,.2f}, drawdown {r.drawdown:.2%}"
            )
        if len(lines) == 1:
            lines.append("no live run")
        open_ = self.svc.incidents.open_now()
        lines.append(f"open incidents: {len(open_)}")
        lines += [f"- [{i.severity}] {i.key}" for i in sorted(open_, key=lambda i: i.opened_ns)[:10]]
        return "\n".join(lines)

    def positions(self) -> str:
        lines = []
        for r in sorted(self._live(), key=lambda r: r.run_id):
            for sym, s in sorted(r.symbol.items()):
                mark = "n/a" if s.mark is None else f"{s.mark:g}"
                lines.append(
                    f"run {r.run_id} {sym}: qty {s.qty:g} @ {s.avg:g}, mark {mark}, unrealised "
                    f"{s.unrealized:,.4f}, realised {s.realized:,.4f}"
                )
        return "\n".join(lines) or "no position in any live run"

    def report(self, period: str) -> str:
        from orderflow.reports.periods import period_of

        now = dt.datetime.fromtimestamp(self.svc.clock() / NS, tz=dt.UTC)
        p = period_of(period, now.date())
        rep = build_period(self.svc.scheduler.journal_url, p, self.svc.cfg.reports.run)
        return "\n".join([f"{period} report {p.label} so far (UTC, to {now:%H:%M})", *summary(rep)])

    def kill(self, mode: str, who: str, why: str) -> str:
        path = write_control(mode, who, why, run_id=None, path=self.svc.src.kill_file)
        return f"kill switch set to {mode} for every run ({path})"
