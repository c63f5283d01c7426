"""Report periods in UTC: a day, a week starting Monday, a calendar month.

A period is the half-open interval ``[start, end)`` in integer nanoseconds. ``period_of(kind, day)``
is the period that contains ``day``; ``last_complete(kind, now)`` the latest one that has ended by
``now``; ``between(kind, since, now)`` every period that has ended in ``(since, now]``, oldest first
(what a scheduler sends, late ones included).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

KINDS = ("daily", "weekly", "monthly")
NS = 1_000_000_000
UTC = dt.UTC


@dataclass(frozen=True)
class Period:
    kind: str
    start: dt.datetime
    end: dt.datetime

    @property
    def start_ns(self) -> int:
        return int(self.start.timestamp()) * NS

    @property
    def end_ns(self) -> int:
        return int(self.end.timestamp()) * NS

    @property
    def label(self) -> str:
        if self.kind == "daily":
            return self.start.strftime("%Y-%m-%d")
        if self.kind == "weekly":
            iso = self.start.isocalendar()
            return f"{iso.year}-W{iso.week:02d}"
        return self.start.strftime("%Y-%m")

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400.0

    def contains(self, ts_ns: int) -> bool:
        return self.start_ns <= ts_ns < self.end_ns

    def next(self) -> Period:
        return period_of(self.kind, self.end.date())


def _check(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"report period {kind!r}: use one of {', '.join(KINDS)}")


def period_of(kind: str, day: dt.date) -> Period:
    """The period of ``kind`` that contains the UTC date ``day``."""
    _check(kind)
    if kind == "daily":
        start = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
        return Period(kind, start, start + dt.timedelta(days=1))
    if kind == "weekly":
        monday = day - dt.timedelta(days=day.weekday())
        start = dt.datetime(monday.year, monday.month, monday.day, tzinfo=UTC)
        return Period(kind, start, start + dt.timedelta(days=7))
    start = dt.datetime(day.year, day.month, 1, tzinfo=UTC)
    nxt = dt.datetime(day.year + (day.month == 12), day.month % 12 + 1, 1, tzinfo=UTC)
    return Period(kind, start, nxt)


def last_complete(kind: str, now: dt.datetime) -> Period:
    """The latest period of ``kind`` that has ended at or before ``now`` (UTC)."""
    now = now.astimezone(UTC)
    current = period_of(kind, now.date())
    return period_of(kind, (current.start - dt.timedelta(days=1)).date())


def between(kind: str, since: dt.datetime | None, now: dt.datetime) -> Iterator[Period]:
    """Every period of ``kind`` that ended after ``since`` and at or before ``now``, oldest first.
    With ``since=None`` only the last complete one."""
    last = last_complete(kind, now)
    if since is None:
        yield last
        return
    p = period_of(kind, since.astimezone(UTC).date())
    if p.end <= since.astimezone(UTC):
        p = p.next()
    while p.end <= last.end:
        yield p
        p = p.next()


def parse_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--date {text!r}: give a UTC date as YYYY-MM-DD") from None
