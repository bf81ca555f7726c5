"""Date ranges of the staff reports: whole UTC days, both ends included.

``DateRange.parse("2025-03-01", "2025-03-31")`` covers every message stored from 2025-03-01
00:00 UTC up to, but not including, 2025-04-01 00:00 UTC. Missing ends default to the last
``default_days`` days up to today (UTC).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from chatbot.errors import InvalidInput

MAX_DAYS = 3660  # ten years: a typo such as 0025-01-01 should not build a million-day series


def parse_day(value: str | date | None, name: str) -> date | None:
    """``YYYY-MM-DD`` (or a ``date``) → date; empty → None; anything else → InvalidInput."""
    if value is None or isinstance(value, date):
        return value
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value) if len(value) == 10 else _bad(name, value)
    except ValueError:
        return _bad(name, value)


def _bad(name: str, value: str) -> date:
    raise InvalidInput(f"'{name}' must be a date written YYYY-MM-DD (got {value[:40]!r}).")


def utc_day(moment: datetime) -> date:
    """The UTC day of a stored time (SQLite gives back naive UTC datetimes)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.date()


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date  # included

    @classmethod
    def parse(
        cls,
        start: str | date | None = None,
        end: str | date | None = None,
        *,
        default_days: int = 30,
        today: date | None = None,
    ) -> DateRange:
        """A checked range; ``from`` after ``to`` or a range over ten years is InvalidInput."""
        first, last = parse_day(start, "from"), parse_day(end, "to")
        today = today or datetime.now(UTC).date()
        if last is None:
            last = max(today, first) if first else today
        if first is None:
            first = last - timedelta(days=default_days - 1)
        if first > last:
            raise InvalidInput(
                f"'from' ({first.isoformat()}) is after 'to' ({last.isoformat()}); "
                "swap them or pick another range."
            )
        if (last - first).days + 1 > MAX_DAYS:
            raise InvalidInput(f"The range is longer than {MAX_DAYS:,} days; pick a shorter one.")
        return cls(first, last)

    @property
    def lower(self) -> datetime:
        """The first instant of the range (UTC)."""
        return datetime.combine(self.start, time.min, tzinfo=UTC)

    @property
    def upper(self) -> datetime:
        """The first instant after the range (UTC): compare with ``<``."""
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=UTC)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def each_day(self) -> Iterator[date]:
        for n in range(self.days):
            yield self.start + timedelta(days=n)

    def __contains__(self, moment: object) -> bool:
        return isinstance(moment, datetime) and self.start <= utc_day(moment) <= self.end


@dataclass(frozen=True)
class Span:
    """An optional date filter: either end may be open (None)."""

    start: date | None = None
    end: date | None = None  # included

    @classmethod
    def parse(cls, start: str | date | None = None, end: str | date | None = None) -> Span:
        first, last = parse_day(start, "from"), parse_day(end, "to")
        if first and last and first > last:
            raise InvalidInput(
                f"'from' ({first.isoformat()}) is after 'to' ({last.isoformat()}); "
                "swap them or pick another range."
            )
        return cls(first, last)

    @property
    def lower(self) -> datetime | None:
        return datetime.combine(self.start, time.min, tzinfo=UTC) if self.start else None

    @property
    def upper(self) -> datetime | None:
        if self.end is None:
            return None
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=UTC)

    def __contains__(self, moment: object) -> bool:
        if not isinstance(moment, datetime):
            return False
        day = utc_day(moment)
        return (self.start is None or day >= self.start) and (self.end is None or day <= self.end)
