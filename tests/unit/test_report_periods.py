"""Report periods in UTC: Monday weeks, month ends, leap years, year ends, late periods."""

from __future__ import annotations

import datetime as dt

import pytest

from orderflow.reports.periods import between, last_complete, parse_day, period_of

U = dt.UTC


def test_a_day_is_midnight_to_midnight_utc():
    p = period_of("daily", dt.date(2026, 3, 29))  # a European DST change: UTC does not care
    assert (p.start, p.end) == (dt.datetime(2026, 3, 29, tzinfo=U), dt.datetime(2026, 3, 30, tzinfo=U))
    assert p.label == "2026-03-29" and p.days == 1.0


@pytest.mark.parametrize("day", [dt.date(2026, 11, 30), dt.date(2026, 12, 2), dt.date(2026, 12, 6)])
def test_weeks_start_on_monday(day: dt.date):
    p = period_of("weekly", day)
    assert p.start == dt.datetime(2026, 11, 30, tzinfo=U)  # Monday
    assert p.end == dt.datetime(2026, 12, 7, tzinfo=U)
    assert p.label == "2026-W49"


def test_a_week_across_the_year_end_has_its_iso_label():
    p = period_of("weekly", dt.date(2027, 1, 1))  # a Friday
    assert p.start == dt.datetime(2026, 12, 28, tzinfo=U)
    assert p.label == "2026-W53"


@pytest.mark.parametrize(
    ("day", "start", "end"),
    [
        (dt.date(2028, 2, 29), dt.date(2028, 2, 1), dt.date(2028, 3, 1)),  # leap February
        (dt.date(2026, 2, 28), dt.date(2026, 2, 1), dt.date(2026, 3, 1)),
        (dt.date(2026, 12, 31), dt.date(2026, 12, 1), dt.date(2027, 1, 1)),  # year end
        (dt.date(2026, 4, 30), dt.date(2026, 4, 1), dt.date(2026, 5, 1)),
    ],
)
def test_months_end_on_the_first_of_the_next(day: dt.date, start: dt.date, end: dt.date):
    p = period_of("monthly", day)
    assert p.start.date() == start and p.end.date() == end
    assert p.contains(p.end_ns - 1) and not p.contains(p.end_ns)


def test_the_last_complete_period():
    now = dt.datetime(2026, 12, 2, 0, 0, 1, tzinfo=U)
    assert last_complete("daily", now).label == "2026-12-01"
    assert last_complete("weekly", now).label == "2026-W48"
    assert last_complete("monthly", now).label == "2026-11"
    at_midnight = dt.datetime(2026, 12, 2, tzinfo=U)
    assert last_complete("daily", at_midnight).label == "2026-12-01"


def test_periods_missed_while_down_come_late_and_in_order():
    since = dt.datetime(2026, 11, 28, 0, 0, 5, tzinfo=U)  # the 27th was sent just after midnight
    now = dt.datetime(2026, 12, 2, 9, tzinfo=U)
    assert [p.label for p in between("daily", since, now)] == [
        "2026-11-28",
        "2026-11-29",
        "2026-11-30",
        "2026-12-01",
    ]
    assert [p.label for p in between("daily", None, now)] == ["2026-12-01"]
    assert list(between("daily", dt.datetime(2026, 12, 2, 0, 0, 1, tzinfo=U), now)) == []


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="report period 'hourly'"):
        period_of("hourly", dt.date(2026, 1, 1))
    with pytest.raises(ValueError, match="--date '2026-13-01'"):
        parse_day("2026-13-01")
