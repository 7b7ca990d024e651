"""Time helpers. Services take a clock so tests can freeze time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Protocol


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return utcnow()


class FixedClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now


def days_between(start: datetime, end: datetime) -> int:
    """Whole days from ``start`` to ``end`` (negative if ``end`` is earlier)."""
    return (end.date() - start.date()).days


def epoch_seconds(moment: datetime) -> int:
    return int(moment.timestamp())
