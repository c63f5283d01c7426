"""Incidents: what the rules say is wrong now, turned into messages exactly once.

The rules keep a *desired* state: for each incident key, whether its condition holds now, since when,
and the numbers behind it (:meth:`Incidents.hold` for a condition, :meth:`Incidents.event` for an event
that keeps an incident open for the rule's ``quiet_s``). :meth:`Incidents.sync` compares that with what
has been announced (the journal's ``alert_incidents``, so a restart remembers) and writes the messages:

- **trigger**: a key becomes active and is not announced; one message per incident, whatever the number
  of events or rules behind it (rules that share a key, such as the feed rules of one symbol, add their
  numbers to the same incident, and the highest severity wins);
- **resolved**: an announced key is no longer active, with how long it lasted and what it counted;
- **escalation**: still open after ``escalate_after_s`` (then again every ``escalate_after_s``, at most
  ``max_escalations`` times), routed one severity up (critical stays critical);
- **cooldown**: a key that triggers again within ``cooldown_s`` of its resolution reopens silently
  (flapping is not news); it still escalates if it stays open.

Nothing is sent while :attr:`Incidents.priming` is set (the alerter replays the telemetry written
before it started): the first :meth:`sync` afterwards announces what is still wrong and resolves what
was announced and has ended, so a restart neither repeats nor forgets an incident.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orderflow.alerts.config import SEVERITIES, AlertsConfig, EventRule, RuleBase
from orderflow.alerts.store import AlertStore, Message
from orderflow.journal.models import AlertIncident

log = logging.getLogger(__name__)
NS = 1_000_000_000


@dataclass
class Part:
    """One rule's contribution to an incident: a held condition (``quiet_ns`` None) or events, which keep
    the incident open until ``quiet_ns`` after the last one."""

    text: str
    last_ns: int
    quiet_ns: int | None


@dataclass
class Condition:
    """The desired state of one incident key."""

    key: str
    rule: str  # the rule of the highest severity among the parts
    severity: str
    cfg: RuleBase
    run_id: int | None
    symbol: str | None
    numbers: dict[str, Any]
    view: str
    since_ns: int
    parts: dict[str, Part] = field(default_factory=dict)
    history: dict[str, str] = field(default_factory=dict)  # every rule's latest line, ended ones too
    count: int = 0  # events counted in this incident
    revision: int = 0  # bumped by a change worth a message (e.g. the kill switch's mode)

    def active(self, now: int) -> bool:
        return any(p.quiet_ns is None or now - p.last_ns < p.quiet_ns for p in self.parts.values())


def _dur(ns: int) -> str:
    s = max(0, ns) / NS
    if s < 90:
        return f"{s:.1f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _utc(ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ns / NS))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


class Incidents:
    """The incident book of one alerter (module docstring)."""

    def __init__(
        self,
        cfg: AlertsConfig,
        store: AlertStore,
        *,
        on_record: Callable[[], None] = lambda: None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.on_record = on_record
        self.clock = clock
        self.priming = False
        self.desired: dict[str, Condition] = {}
        self.announced: dict[str, AlertIncident] = store.incidents(open_only=False)
        self._revision: dict[str, int] = {}  # the revision last announced per key
        self._silent: set[str] = set()

    # -- what the rules say ------------------------------------------------------------------------
    def hold(
        self,
        rule: str,
        cfg: RuleBase,
        key: str,
        active: bool,
        ts_ns: int,
        *,
        run_id: int | None = None,
        symbol: str | None = None,
        text: str = "",
        numbers: Mapping[str, Any] | None = None,
        view: str = "overview",
        severity: str | None = None,
        changed: bool = False,
    ) -> None:
        """Set whether ``rule``'s condition holds for ``key`` at ``ts_ns``; ``changed`` marks a change
        the operator must hear of while the incident stays open (the kill switch's mode)."""
        if not active:
            c = self.desired.get(key)
            if c is not None and rule in c.parts and c.parts[rule].quiet_ns is None:
                del c.parts[rule]
            return
        self._activate(rule, cfg, key, ts_ns, None, run_id, symbol, text, numbers, view, severity, changed)

    def event(
        self,
        rule: str,
        cfg: EventRule,
        key: str,
        ts_ns: int,
        *,
        run_id: int | None = None,
        symbol: str | None = None,
        text: str = "",
        numbers: Mapping[str, Any] | None = None,
        view: str = "overview",
        severity: str | None = None,
    ) -> None:
        """An event of ``rule``: ``key`` is active now and stays so for ``cfg.quiet_s``."""
        quiet = int(cfg.quiet_s * NS)
        self._activate(rule, cfg, key, ts_ns, quiet, run_id, symbol, text, numbers, view, severity, False)

    def _activate(
        self,
        rule: str,
        cfg: RuleBase,
        key: str,
        ts_ns: int,
        quiet_ns: int | None,
        run_id: int | None,
        symbol: str | None,
        text: str,
        numbers: Mapping[str, Any] | None,
        view: str,
        severity: str | None,
        changed: bool,
    ) -> None:
        sev = severity or cfg.severity
        c = self.desired.get(key)
        if c is None:
            c = self.desired[key] = Condition(key, rule, sev, cfg, run_id, symbol, {}, view, ts_ns)
        part = c.parts.get(rule)
        if part is None:
            c.parts[rule] = Part(text, ts_ns, quiet_ns)
        else:
            part.text, part.last_ns = text, max(part.last_ns, ts_ns)
        c.history[rule] = text
        if quiet_ns is not None:
            c.count += 1
        c.numbers.update(numbers or {})
        if SEVERITIES.index(sev) > SEVERITIES.index(c.severity):
            c.severity, c.rule, c.cfg, c.view = sev, rule, cfg, view
        if changed:
            c.revision += 1

    def clear_run(self, run_id: int, ts_ns: int, keep: tuple[str, ...] = ()) -> None:
        """A run that stopped: its conditions end (apart from rules in ``keep``)."""
        for c in self.desired.values():
            if c.run_id == run_id:
                c.parts = {r: p for r, p in c.parts.items() if r in keep}

    # -- messages ----------------------------------------------------------------------------------
    def sync(self, now: int | None = None) -> int:
        """Write the messages that make the announced state match the desired one; returns how many."""
        if self.priming:
            return 0
        now = self.clock() if now is None else now
        sent = 0
        for key, c in list(self.desired.items()):
            inc = self.announced.get(key)
            is_open = inc is not None and inc.resolved_ns is None
            if c.active(now):
                if not is_open:
                    sent += self._open(c, inc, now)
                else:
                    assert inc is not None
                    if c.revision != self._revision.get(key, 0):
                        sent += self._send(c, "trigger", c.severity, now, changed=True)
                        self._revision[key] = c.revision
                    sent += self._maybe_escalate(c, inc, now)
            else:
                if is_open:
                    sent += self._resolve(c, now)
                del self.desired[key]
        for key, inc in list(self.announced.items()):  # announced before a restart, no longer wrong
            if inc.resolved_ns is None and key not in self.desired:
                sent += self._resolve_orphan(inc, now)
        if sent:
            self.on_record()
        return sent

    def _open(self, c: Condition, prev: AlertIncident | None, now: int) -> int:
        silent = (
            prev is not None
            and prev.resolved_ns is not None
            and now - prev.resolved_ns < c.cfg.cooldown_s * NS
        )
        inc = AlertIncident(
            key=c.key,
            rule=c.rule,
            severity=c.severity,
            run_id=c.run_id,
            symbol=c.symbol,
            opened_ns=prev.opened_ns if silent and prev is not None else c.since_ns,
            last_sent_ns=now,
            escalations=prev.escalations if silent and prev is not None else 0,
            resolved_ns=None,
        )
        self.announced[c.key] = inc
        self._revision[c.key] = c.revision
        if silent:
            self._silent.add(c.key)
            self.store.update_incident(c.key, None, (), now, resolved_ns=None)
            log.info("incident %s reopened within its cooldown: not announced again", c.key)
            return 0
        self._silent.discard(c.key)
        msg = self._message(c, "trigger", c.severity, now)
        self.store.open_incident(inc, msg, self._routes(c.severity), now)
        return 1

    def _maybe_escalate(self, c: Condition, inc: AlertIncident, now: int) -> int:
        after = c.cfg.escalate_after_s
        if after is None or inc.escalations >= c.cfg.max_escalations:
            return 0
        if now - inc.opened_ns < after * NS * (inc.escalations + 1):
            return 0
        up = SEVERITIES[min(len(SEVERITIES) - 1, SEVERITIES.index(c.severity) + 1)]
        inc.escalations += 1
        inc.last_sent_ns = now
        msg = self._message(c, "escalation", up, now, opened_ns=inc.opened_ns)
        self.store.update_incident(
            c.key, msg, self._routes(up), now, escalations=inc.escalations, last_sent_ns=now
        )
        return 1

    def _resolve(self, c: Condition, now: int) -> int:
        inc = self.announced[c.key]
        inc.resolved_ns = now
        if c.key in self._silent:
            self._silent.discard(c.key)
            self.store.update_incident(c.key, None, (), now, resolved_ns=now)
            return 0
        msg = self._message(c, "resolved", c.severity, now, opened_ns=inc.opened_ns)
        self.store.update_incident(c.key, msg, self._routes(c.severity), now, resolved_ns=now)
        return 1

    def _resolve_orphan(self, inc: AlertIncident, now: int) -> int:
        inc.resolved_ns = now
        msg = Message(
            kind="resolved",
            rule=inc.rule,
            severity=inc.severity,
            incident=inc.key,
            title=f"[RESOLVED] {inc.rule.replace('_', ' ')}{_where(inc.run_id, inc.symbol)}",
            body=f"{inc.rule.replace('_', ' ')}: no longer the case after {_dur(now - inc.opened_ns)} "
            f"(opened {_utc(inc.opened_ns)}; noticed after an alerter restart)",
            numbers={"open_s": round((now - inc.opened_ns) / NS, 3)},
            run_id=inc.run_id,
            symbol=inc.symbol,
            link=self._link(inc.run_id, "overview"),
        )
        self.store.update_incident(inc.key, msg, self._routes(inc.severity), now, resolved_ns=now)
        return 1

    def _send(self, c: Condition, kind: str, severity: str, now: int, changed: bool = False) -> int:
        msg = self._message(c, kind, severity, now, changed=changed)
        self.store.update_incident(c.key, msg, self._routes(severity), now, last_sent_ns=now)
        return 1

    def _routes(self, severity: str) -> tuple[str, ...]:
        return self.cfg.routing.channels(severity)

    def _link(self, run_id: int | None, view: str) -> str:
        base = self.cfg.dashboard_url.rstrip("/")
        return f"{base}/#view={view}" + (f"&run={run_id}" if run_id is not None else "")

    def _message(
        self,
        c: Condition,
        kind: str,
        severity: str,
        now: int,
        *,
        opened_ns: int | None = None,
        changed: bool = False,
    ) -> Message:
        name = c.rule.replace("_", " ")
        where = _where(c.run_id, c.symbol)
        opened = opened_ns if opened_ns is not None else c.since_ns
        if kind == "resolved":
            title = f"[RESOLVED] {name}{where}"
            head = f"{name}{where}: resolved after {_dur(now - opened)} (opened {_utc(opened)})"
        elif kind == "escalation":
            title = f"[{severity.upper()}] still open: {name}{where}"
            head = f"{name}{where}: still open after {_dur(now - opened)} (escalated to {severity})"
        else:
            title = f"[{severity.upper()}] {'changed: ' if changed else ''}{name}{where}"
            head = ""  # the title says it
        lines = [head] if head else []
        lines += [t for t in c.history.values() if t]  # every rule seen in the incident, its latest line
        if c.count > 1:
            lines.append(f"events in this incident: {c.count}")
        nums = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(c.numbers.items()))
        if nums:
            lines.append(f"numbers: {nums}")
        lines.append(f"rule: {c.rule} · severity: {c.severity} · incident: {c.key}")
        link = self._link(c.run_id, c.view)
        lines.append(f"dashboard: {link}")
        numbers = dict(c.numbers)
        if kind == "resolved":
            numbers["open_s"] = round((now - opened) / NS, 3)
        return Message(
            kind=kind,
            rule=c.rule,
            severity=severity,
            incident=c.key,
            title=title,
            body="\n".join(lines),
            numbers=json.loads(json.dumps(numbers, default=str)),
            run_id=c.run_id,
            symbol=c.symbol,
            link=link,
        )

    def open_now(self) -> list[AlertIncident]:
        """The incidents announced and not resolved (``/status``)."""
        return [i for i in self.announced.values() if i.resolved_ns is None]


def _where(run_id: int | None, symbol: str | None) -> str:
    parts = ([f"run {run_id}"] if run_id is not None else []) + ([symbol] if symbol else [])
    return (": " + " ".join(parts)) if parts else ""
