"""The report scheduler: each period once, at its end (UTC), never twice across restarts, late with a note."""

from __future__ import annotations

import datetime as dt

import pytest

from orderflow.alerts.config import AlertsConfig, ChannelConfig, ReportsConfig, RoutingConfig
from orderflow.alerts.scheduler import ReportScheduler
from orderflow.alerts.store import AlertStore

NS = 1_000_000_000


def _ns(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp()) * NS


class Clock:
    def __init__(self, t: int) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


@pytest.fixture
def env(tmp_path):
    url = str(tmp_path / "j.sqlite")
    cfg = AlertsConfig(
        channels={"mail": ChannelConfig(url="mailto://u:p@127.0.0.1:1?to=a@b.c")},
        routing=RoutingConfig(info=("mail",)),
        reports=ReportsConfig(pdf=False, out=str(tmp_path / "reports")),
    )
    return cfg, url, tmp_path


def _sched(cfg, url, clock):
    store = AlertStore.open(url)
    return store, ReportScheduler(cfg, store, f"sqlite:///{url}", clock=clock)


def test_each_period_is_sent_once_when_it_ends_and_never_again_after_a_restart(env):
    cfg, url, tmp = env
    clock = Clock(_ns(2026, 11, 29, 22, 0))  # Sunday evening: first start
    store, s = _sched(cfg, url, clock)
    assert s.step() == []  # nothing has ended since the first start
    clock.t = _ns(2026, 11, 30, 0, 0, 5)  # Monday 00:00:05: the day and the week ended
    assert s.step() == ["daily:2026-11-29", "weekly:2026-W48"]
    assert s.step() == []
    store.close()
    # a restart later that day: nothing is sent again
    clock.t = _ns(2026, 11, 30, 12, 0)
    store, s = _sched(cfg, url, clock)
    assert s.step() == []
    # the month ends at Tuesday 00:00 (December 1st)
    clock.t = _ns(2026, 12, 1, 0, 1)
    assert s.step() == ["daily:2026-11-30", "monthly:2026-11"]
    sent = [a for a in store.alerts() if a["kind"] == "report"]
    assert [a["incident"] for a in sent] == [
        "report:daily:2026-11-29",
        "report:weekly:2026-W48",
        "report:daily:2026-11-30",
        "report:monthly:2026-11",
    ]
    assert all(a["deliveries"] == [{"channel": "mail", "state": "pending", "attempts": 0, "last_error": None}]
               for a in sent)  # fmt: skip
    assert (tmp / "reports" / "daily-2026-11-29" / "report.html").exists()
    assert "late" not in sent[0]["title"]
    store.close()


def test_a_period_missed_while_the_alerter_was_down_is_sent_late_with_a_note(env):
    cfg, url, _ = env
    clock = Clock(_ns(2026, 12, 1, 10, 0))
    store, s = _sched(cfg, url, clock)
    store.close()
    clock.t = _ns(2026, 12, 3, 9, 30)  # down for two days
    store, s = _sched(cfg, url, clock)
    assert s.step() == ["daily:2026-12-01", "daily:2026-12-02"]
    late = [a for a in store.alerts() if a["kind"] == "report"]
    assert all(a["title"].endswith("(late)") and "sent late" in a["body"] for a in late)
    assert late[0]["numbers"]["late"] is True
    store.close()


def test_two_schedulers_on_one_journal_send_a_period_once(env):
    cfg, url, _ = env
    clock = Clock(_ns(2026, 12, 1, 23, 0))
    store_a, a = _sched(cfg, url, clock)
    store_b, b = _sched(cfg, url, clock)
    clock.t = _ns(2026, 12, 2, 0, 0, 1)
    p = a.due(clock.t)[0]
    assert a.send(p, clock.t) is True
    assert b.send(p, clock.t) is False  # the claim is in the journal: the second one backs off
    assert len([x for x in store_a.alerts() if x["kind"] == "report"]) == 1
    store_a.close()
    store_b.close()
