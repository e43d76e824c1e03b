"""Schedule expressions the emulator fires: rate(...) and six-field cron(...), in UTC."""

from __future__ import annotations

import datetime as dt

import pytest
from storewire_local.emulator.schedules import Cron, ScheduleError, next_fire, rate_seconds

T0 = dt.datetime(2026, 11, 27, 2, 30, 15, tzinfo=dt.UTC)  # a Friday


def test_rates() -> None:
    assert rate_seconds("rate(1 minute)") == 60
    assert rate_seconds("rate(5 minutes)") == 300
    assert rate_seconds("rate(2 hours)") == 7200
    assert rate_seconds("rate(1 day)") == 86400
    assert rate_seconds("cron(0 * * * ? *)") is None
    first = next_fire("rate(5 minutes)", T0, T0)
    assert first == T0 + dt.timedelta(minutes=5)
    assert next_fire("rate(5 minutes)", first, T0) == T0 + dt.timedelta(minutes=10)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("cron(0 3 * * ? *)", dt.datetime(2026, 11, 27, 3, 0, tzinfo=dt.UTC)),
        ("cron(0 2 * * ? *)", dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC)),
        ("cron(*/15 * * * ? *)", dt.datetime(2026, 11, 27, 2, 45, tzinfo=dt.UTC)),
        ("cron(0/20 * * * ? *)", dt.datetime(2026, 11, 27, 2, 40, tzinfo=dt.UTC)),
        ("cron(0 9 ? * MON-FRI *)", dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)),
        ("cron(0 9 ? * 2 *)", dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)),  # 2 = MON
        ("cron(0 0 1 * ? *)", dt.datetime(2026, 12, 1, 0, 0, tzinfo=dt.UTC)),
        ("cron(30 4 1 JAN ? *)", dt.datetime(2027, 1, 1, 4, 30, tzinfo=dt.UTC)),
        ("cron(0 12 * * ? 2028)", dt.datetime(2028, 1, 1, 12, 0, tzinfo=dt.UTC)),
        ("cron(31,45 2 * * ? *)", dt.datetime(2026, 11, 27, 2, 31, tzinfo=dt.UTC)),
    ],
)
def test_cron_next_fire(expression: str, expected: dt.datetime) -> None:
    assert next_fire(expression, T0, T0) == expected


def test_cron_matches_sunday_as_one() -> None:
    sunday = dt.datetime(2026, 11, 29, 10, 0, tzinfo=dt.UTC)
    assert Cron("cron(0 10 ? * SUN *)").matches(sunday)
    assert Cron("cron(0 10 ? * 1 *)").matches(sunday)
    assert not Cron("cron(0 10 ? * 2 *)").matches(sunday)


@pytest.mark.parametrize(
    "expression", ["cron(0 10 L * ? *)", "cron(0 10 * *)", "every day", "cron(0 10 ? * 2#1 *)"]
)
def test_unsupported_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ScheduleError):
        next_fire(expression, T0, T0)
