"""EventBridge schedule expressions: ``rate(...)`` and ``cron(...)`` (six fields, UTC)."""

from __future__ import annotations

import datetime as dt
import re

_RATE_RE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    )
}
# EventBridge day-of-week: 1-7 = SUN-SAT
_DAYS = {d: i + 1 for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}


class ScheduleError(ValueError):
    """An expression the local scheduler cannot evaluate."""


def rate_seconds(expression: str) -> float | None:
    match = _RATE_RE.match(expression.strip())
    if not match:
        return None
    value, unit = int(match.group(1)), match.group(2)
    if value <= 0:
        raise ScheduleError(f"invalid rate: {expression}")
    return value * {"m": 60, "h": 3600, "d": 86400}[unit[0]]


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int] | None:
    """Values matched by one cron field; None for ``*``/``?`` (any)."""
    if text in ("*", "?"):
        return None
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
        if part in ("*", ""):
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _value(a, names), _value(b, names)
        else:
            start = _value(part, names)
            end = high if step > 1 else start
        if not (low <= start <= high and low <= end <= high):
            raise ScheduleError(f"cron field out of range: {text}")
        values.update(range(start, end + 1, step))
    return values


def _value(text: str, names: dict[str, int] | None) -> int:
    text = text.strip().upper()
    if names and text in names:
        return names[text]
    if not text.isdigit():
        raise ScheduleError(f"unsupported cron token: {text!r} (L, W and # are not evaluated)")
    return int(text)


class Cron:
    """``cron(minutes hours day-of-month month day-of-week year)``."""

    def __init__(self, expression: str) -> None:
        body = expression.strip()
        if not (body.startswith("cron(") and body.endswith(")")):
            raise ScheduleError(f"not a cron expression: {expression}")
        fields = body[5:-1].split()
        if len(fields) != 6:
            raise ScheduleError(f"cron needs 6 fields: {expression}")
        self.minutes = _field(fields[0], 0, 59)
        self.hours = _field(fields[1], 0, 23)
        self.days = _field(fields[2], 1, 31)
        self.months = _field(fields[3], 1, 12, _MONTHS)
        self.weekdays = _field(fields[4], 1, 7, _DAYS)
        self.years = _field(fields[5], 1970, 2199)

    def matches(self, when: dt.datetime) -> bool:
        weekday = (when.isoweekday() % 7) + 1  # SUN=1 .. SAT=7
        return (
            (self.minutes is None or when.minute in self.minutes)
            and (self.hours is None or when.hour in self.hours)
            and (self.days is None or when.day in self.days)
            and (self.months is None or when.month in self.months)
            and (self.weekdays is None or weekday in self.weekdays)
            and (self.years is None or when.year in self.years)
        )

    def next_after(self, after: dt.datetime) -> dt.datetime | None:
        """The first matching minute strictly after ``after`` (within ~5 years)."""
        when = after.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        limit = when + dt.timedelta(days=366 * 5)
        while when < limit:
            if self.months is not None and when.month not in self.months:
                when = (when.replace(day=1, hour=0, minute=0) + dt.timedelta(days=32)).replace(
                    day=1
                )
                continue
            day_ok = (self.days is None or when.day in self.days) and (
                self.weekdays is None or ((when.isoweekday() % 7) + 1) in self.weekdays
            )
            if not day_ok or (self.years is not None and when.year not in self.years):
                when = when.replace(hour=0, minute=0) + dt.timedelta(days=1)
                continue
            if self.hours is not None and when.hour not in self.hours:
                when = when.replace(minute=0) + dt.timedelta(hours=1)
                continue
            if self.matches(when):
                return when
            when += dt.timedelta(minutes=1)
        return None


def next_fire(expression: str, after: dt.datetime, started: dt.datetime) -> dt.datetime | None:
    """When a schedule fires next after ``after`` (rates count from ``started``)."""
    expression = expression.strip()
    period = rate_seconds(expression)
    if period is not None:
        elapsed = (after - started).total_seconds()
        periods = int(elapsed // period) + 1
        return started + dt.timedelta(seconds=periods * period)
    if expression.startswith("cron("):
        return Cron(expression).next_after(after)
    if expression.startswith("at("):
        when = dt.datetime.fromisoformat(expression[3:-1]).replace(tzinfo=dt.UTC)
        return when if when > after else None
    raise ScheduleError(f"unsupported schedule expression: {expression}")
