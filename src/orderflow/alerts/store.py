"""The alerter's durable record, in the journal's database (its own tables; it never writes the engine's).

Every message is an :class:`~orderflow.journal.models.Alert` row written *before* any channel is tried,
with one :class:`~orderflow.journal.models.AlertDelivery` row per channel it is routed to (``pending``
until ``sent`` or given up as ``failed``). A crash between the two loses nothing: a restarted alerter
resumes the pending deliveries. Incidents, the scheduled report claims and small state values (the
Telegram update offset) live here too, so a restart neither repeats nor forgets.

Each method is one short transaction (SQLite: ``BEGIN IMMEDIATE``; WAL keeps the engine's writes and
the dashboard's reads going).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orderflow.journal.models import (
    Alert,
    AlertDelivery,
    AlerterState,
    AlertIncident,
    ReportSend,
)
from orderflow.journal.repository import Journal
from orderflow.secrets import redact


@dataclass(frozen=True)
class Message:
    """What the alerter sends: composed once, journaled, then delivered to each routed channel."""

    kind: str  # trigger, resolved, escalation, test, report
    rule: str
    severity: str
    incident: str
    title: str
    body: str
    numbers: Mapping[str, Any]
    run_id: int | None = None
    symbol: str | None = None
    link: str | None = None


@dataclass(frozen=True)
class Due:
    """A pending delivery whose next try is due."""

    delivery_id: int
    alert_id: int
    channel: str
    attempts: int
    title: str
    body: str
    severity: str
    kind: str


class AlertStore:
    """The alerter's tables over a journal connection (the schema is upgraded by :meth:`Journal.open`)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.engine = journal.engine

    @classmethod
    def open(cls, url: str | None = None) -> AlertStore:
        return cls(Journal.open(url))

    def close(self) -> None:
        self.journal.close()

    def _write(self) -> Any:
        return self.journal.session(write=True)

    def _read(self) -> Any:
        return self.journal.session()

    # -- alerts and deliveries --------------------------------------------------------------------
    def record(self, msg: Message, channels: Sequence[str], ts_ns: int) -> int:
        """Journal ``msg`` and a pending delivery to each of ``channels``; returns the alert id."""
        with self._write() as s:
            return self._record(s, msg, channels, ts_ns)

    def _record(self, s: Session, msg: Message, channels: Sequence[str], ts_ns: int) -> int:
        row = Alert(
            ts_ns=ts_ns,
            kind=msg.kind,
            rule=msg.rule,
            severity=msg.severity,
            incident=msg.incident[:200],
            run_id=msg.run_id,
            symbol=msg.symbol,
            title=redact(msg.title),
            body=redact(msg.body),
            numbers=json.dumps(dict(msg.numbers), default=str, sort_keys=True),
            link=msg.link,
        )
        s.add(row)
        s.flush()
        for ch in dict.fromkeys(channels):
            s.add(AlertDelivery(alert_id=row.id, channel=ch, state="pending", attempts=0, next_ns=ts_ns))
        return int(row.id)

    def due(self, now_ns: int, channel: str | None = None, limit: int = 100) -> list[Due]:
        """Pending deliveries due at ``now_ns`` (of one channel), oldest first."""
        q = (
            sa.select(AlertDelivery, Alert)
            .join(Alert, Alert.id == AlertDelivery.alert_id)
            .where(AlertDelivery.state == "pending", AlertDelivery.next_ns <= now_ns)
            .order_by(AlertDelivery.next_ns, AlertDelivery.id)
            .limit(limit)
        )
        if channel is not None:
            q = q.where(AlertDelivery.channel == channel)
        with self._read() as s:
            return [
                Due(d.id, a.id, d.channel, d.attempts, a.title, a.body, a.severity, a.kind)
                for d, a in s.execute(q)
            ]

    def mark_sent(self, delivery_id: int, now_ns: int) -> None:
        with self._write() as s:
            d = s.get_one(AlertDelivery, delivery_id)
            d.state, d.attempts, d.sent_ns, d.last_error = "sent", d.attempts + 1, now_ns, None

    def mark_retry(self, delivery_id: int, next_ns: int, error: str) -> None:
        with self._write() as s:
            d = s.get_one(AlertDelivery, delivery_id)
            d.attempts, d.next_ns, d.last_error = d.attempts + 1, next_ns, redact(error)[:2000]

    def mark_failed(self, delivery_id: int, error: str) -> None:
        with self._write() as s:
            d = s.get_one(AlertDelivery, delivery_id)
            d.state, d.attempts, d.last_error = "failed", d.attempts + 1, redact(error)[:2000]

    def alerts(self, since_ns: int = 0, until_ns: int | None = None) -> list[dict[str, Any]]:
        """Alerts from ``since_ns`` with their deliveries, oldest first (reports, ``/status``, tests)."""
        q = sa.select(Alert).where(Alert.ts_ns >= since_ns).order_by(Alert.ts_ns, Alert.id)
        if until_ns is not None:
            q = q.where(Alert.ts_ns < until_ns)
        with self._read() as s:
            rows = list(s.scalars(q))
            ids = [r.id for r in rows]
            deliveries: dict[int, list[dict[str, Any]]] = {}
            if ids:
                for d in s.scalars(sa.select(AlertDelivery).where(AlertDelivery.alert_id.in_(ids))):
                    deliveries.setdefault(d.alert_id, []).append(
                        {
                            "channel": d.channel,
                            "state": d.state,
                            "attempts": d.attempts,
                            "last_error": d.last_error,
                        }
                    )
            return [
                {
                    "id": r.id,
                    "ts_ns": r.ts_ns,
                    "kind": r.kind,
                    "rule": r.rule,
                    "severity": r.severity,
                    "incident": r.incident,
                    "run_id": r.run_id,
                    "symbol": r.symbol,
                    "title": r.title,
                    "body": r.body,
                    "numbers": json.loads(r.numbers),
                    "link": r.link,
                    "deliveries": sorted(deliveries.get(r.id, []), key=lambda d: d["channel"]),
                }
                for r in rows
            ]

    # -- incidents --------------------------------------------------------------------------------
    def incidents(self, open_only: bool = True) -> dict[str, AlertIncident]:
        q = sa.select(AlertIncident)
        if open_only:
            q = q.where(AlertIncident.resolved_ns.is_(None))
        with self._read() as s:
            return {i.key: i for i in s.scalars(q)}

    def open_incident(self, inc: AlertIncident, msg: Message, channels: Sequence[str], ts_ns: int) -> int:
        """Open (or reopen) ``inc`` and journal its first message, in one transaction."""
        with self._write() as s:
            s.merge(inc)
            return self._record(s, msg, channels, ts_ns)

    def update_incident(
        self, key: str, msg: Message | None, channels: Sequence[str], ts_ns: int, **fields: Any
    ) -> int | None:
        """Change ``fields`` of incident ``key`` and journal ``msg`` (if any), in one transaction."""
        with self._write() as s:
            inc = s.get_one(AlertIncident, key)
            for k, v in fields.items():
                setattr(inc, k, v)
            return self._record(s, msg, channels, ts_ns) if msg is not None else None

    # -- scheduled reports ------------------------------------------------------------------------
    def claim_report(
        self,
        kind: str,
        label: str,
        ts_ns: int,
        late: bool,
        note: str | None,
        msg: Message,
        channels: Sequence[str],
    ) -> int | None:
        """Claim period ``(kind, label)`` and journal its message in one transaction; ``None`` when it
        was claimed before (a restart, or a second alerter): the period is never sent twice."""
        try:
            with self._write() as s:
                s.add(ReportSend(kind=kind, label=label, claimed_ns=ts_ns, late=late, note=note))
                s.flush()
                alert_id = self._record(s, msg, channels, ts_ns)
                s.get_one(ReportSend, (kind, label)).alert_id = alert_id
                return alert_id
        except IntegrityError:
            return None

    def report_claimed(self, kind: str, label: str) -> bool:
        with self._read() as s:
            return s.get(ReportSend, (kind, label)) is not None

    def last_report(self, kind: str) -> str | None:
        """The label of the latest claimed period of ``kind`` (labels sort by time)."""
        with self._read() as s:
            return s.scalar(sa.select(sa.func.max(ReportSend.label)).where(ReportSend.kind == kind))

    # -- small durable values ---------------------------------------------------------------------
    def get_state(self, key: str, default: str | None = None) -> str | None:
        with self._read() as s:
            row = s.get(AlerterState, key)
            return row.value if row is not None else default

    def set_state(self, key: str, value: str, ts_ns: int) -> None:
        with self._write() as s:
            s.merge(AlerterState(key=key, value=value, updated_ns=ts_ns))
