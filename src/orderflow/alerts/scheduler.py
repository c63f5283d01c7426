"""Scheduled reports: each daily, weekly and monthly report is sent once, when its period ends (UTC).

At each :meth:`ReportScheduler.step` every configured period kind is checked for periods that ended
since the last one sent (or, on the alerter's very first start, since that start: a new install does
not send the past). For each, the report is built from the journal (read-only), written as HTML, JSON
and PDF under the reports directory, and its message is journaled with the claim of the period in one
transaction (``report_sends``, keyed by kind and label). A restart therefore never sends a period twice:
a claimed period is skipped, and a claimed one whose delivery had not finished is resumed by the
deliverer from its pending rows. A period found more than ``LATE_S`` after its end (the alerter was
not running) is sent with a note saying so.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orderflow.alerts.config import AlertsConfig
from orderflow.alerts.store import AlertStore, Message
from orderflow.reports.periods import NS, Period, between

log = logging.getLogger(__name__)
LATE_S = 900.0  # a report sent this long after its period ended says it is late
SINCE_KEY = "reports.since_ns"
RETRY_S = 60.0  # after a failed build, the period is tried again this much later


def default_reports_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("orderflow")) / "reports"


def build_period(journal_url: str, period: Period, run: int | None) -> dict[str, Any]:
    """The report of ``period`` from the journal at ``journal_url``, opened read-only."""
    from orderflow.journal.db import readonly_engine, sqlite_path
    from orderflow.reports.build import build_report

    path = sqlite_path(journal_url)
    if path is not None and not path.exists():
        raise FileNotFoundError(f"journal {path} does not exist")
    engine = readonly_engine(journal_url)
    try:
        with engine.connect() as conn:
            return build_report(conn, period, run)
    finally:
        engine.dispose()


def _f(x: Any, fmt: str = ",.2f") -> str:
    return "n/a" if x is None else format(float(x), fmt)


def summary(rep: dict[str, Any]) -> list[str]:
    """The report's headline figures, one per line (the message body; the files hold the rest)."""
    p, t, r = rep["pnl"], rep["trades"], rep["ratios"]
    lines = [
        f"net PnL {_f(p['net'], ',.4f')} = gross {_f(p['gross'], ',.4f')} - fees {_f(p['fees'], ',.4f')}"
        f" + funding {_f(p['funding'], ',.4f')}",
        f"round trips {t['count']}, win rate {_f(t['win_rate'], '.1%')}, profit factor "
        f"{_f(t['profit_factor'], '.2f')}; fills {rep['fills']}",
        f"Sharpe {_f(r['sharpe'], '.2f')}, Sortino {_f(r['sortino'], '.2f')} (365-day, 24-hour year); "
        f"max drawdown {_f(r['max_drawdown'], '.2%')} over {r['max_drawdown_minutes']} min",
    ]
    gates = rep.get("rejections_by_gate") or {}
    if gates:
        top = ", ".join(f"{g} {n}" for g, n in list(gates.items())[:4])
        lines.append(f"decisions accepted {rep.get('accepted', 0)}; refused by gate: {top}")
    risk = rep.get("risk_by_rule") or {}
    if risk:
        lines.append("risk events: " + ", ".join(f"{k} {v}" for k, v in risk.items()))
    return lines


class ReportScheduler:
    """Sends each configured period's report once (module docstring)."""

    def __init__(
        self,
        cfg: AlertsConfig,
        store: AlertStore,
        journal_url: str,
        *,
        out_dir: Path | None = None,
        clock: Callable[[], int] = time.time_ns,
        on_record: Callable[[], None] = lambda: None,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.journal_url = journal_url
        self.out_dir = out_dir or (Path(cfg.reports.out) if cfg.reports.out else default_reports_dir())
        self.clock = clock
        self.on_record = on_record
        self._retry_at: dict[tuple[str, str], int] = {}
        now = clock()
        since = store.get_state(SINCE_KEY)
        if since is None:
            store.set_state(SINCE_KEY, str(now), now)
            since = str(now)
        self.since_ns = int(since)

    def channels(self) -> tuple[str, ...]:
        return self.cfg.reports.channels or self.cfg.routing.info

    def due(self, now_ns: int) -> list[Period]:
        """Periods that have ended and are not claimed yet, oldest first."""
        now = dt.datetime.fromtimestamp(now_ns / NS, tz=dt.UTC)
        out: list[Period] = []
        for kind in self.cfg.reports.periods:
            since = dt.datetime.fromtimestamp(self.since_ns / NS, tz=dt.UTC)
            for p in between(kind, since, now):
                if not self.store.report_claimed(p.kind, p.label):
                    out.append(p)
        return sorted(out, key=lambda p: (p.end, p.kind))

    def step(self, now_ns: int | None = None) -> list[str]:
        """Send what is due; returns the ``kind:label`` of each period sent."""
        now = self.clock() if now_ns is None else now_ns
        sent: list[str] = []
        for p in self.due(now):
            if self._retry_at.get((p.kind, p.label), 0) > now:
                continue
            try:
                if self.send(p, now):
                    sent.append(f"{p.kind}:{p.label}")
            except Exception as exc:  # a journal or disk problem: say so, try again later
                self._retry_at[(p.kind, p.label)] = now + int(RETRY_S * NS)
                log.warning("%s report %s not built: %s (retry in %g s)", p.kind, p.label, exc, RETRY_S)
        if sent:
            self.on_record()
        return sent

    def send(self, p: Period, now: int) -> bool:
        """Build, write and journal the report of ``p``; False if it was claimed meanwhile."""
        from orderflow.reports.render import write_report

        rep = build_period(self.journal_url, p, self.cfg.reports.run)
        out = self.out_dir / f"{p.kind}-{p.label}"
        paths = write_report(rep, out, pdf=self.cfg.reports.pdf)
        late_s = (now - p.end_ns) / NS
        late = late_s > LATE_S
        note = (
            f"sent late: the period ended {p.end.isoformat()}, {late_s / 3600:.1f} h ago, while the alerter "
            "was not running"
            if late
            else None
        )
        lines = [f"{p.kind} report {p.label} (UTC, {p.start:%Y-%m-%d %H:%M} to {p.end:%Y-%m-%d %H:%M})"]
        lines += summary(rep)
        if note:
            lines.append(note)
        lines += [f"{k}: {v}" for k, v in paths.items()]
        link = f"{self.cfg.dashboard_url.rstrip('/')}/#view=reports"
        lines.append(f"dashboard: {link}")
        pnl = rep["pnl"]
        msg = Message(
            kind="report",
            rule=f"report_{p.kind}",
            severity="info",
            incident=f"report:{p.kind}:{p.label}",
            title=f"orderflow {p.kind} report {p.label}: net {_f(pnl['net'], ',.2f')}"
            + (" (late)" if late else ""),
            body="\n".join(lines),
            numbers={
                "net": str(pnl["net"]),
                "gross": str(pnl["gross"]),
                "fees": str(pnl["fees"]),
                "round_trips": rep["trades"]["count"],
                "late": late,
                "files": {k: str(v) for k, v in paths.items()},
            },
            run_id=self.cfg.reports.run,
            link=link,
        )
        alert_id = self.store.claim_report(p.kind, p.label, now, late, note, msg, self.channels())
        if alert_id is None:
            log.info("%s report %s was already sent", p.kind, p.label)
            return False
        log.info("%s report %s sent to %s%s", p.kind, p.label, ", ".join(self.channels()) or "no channel",
                 " (late)" if late else "")  # fmt: skip
        return True
