"""Partial dates (EDTF) on the valid-time axis and timestamps on the transaction-time axis."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache

from twinflow.errors import InvalidInput

PLAIN = re.compile(r"^[0-9]{4}(?:-[0-9]{2}(?:-[0-9]{2})?)?$")
DATE_HELP = (
    "YYYY, YYYY-MM or YYYY-MM-DD, optionally with ? (uncertain), ~ (approximate) or % (both), "
    "or with unspecified digits as X (202X, 2022-XX)"
)


@dataclass(frozen=True, order=True)
class PartialDate:
    """A date as precise as its source: `2022`, `2024-03`, `2024-03-14`, `2022?`, `2022-03~`.

    `start` is the first day of the span as written and orders dates on the axis;
    `earliest` and `latest` bound the days it may mean, widened for ? and ~ the way
    the EDTF specification (and the `edtf` package) does.
    """

    start: dt.date
    earliest: dt.date
    latest: dt.date
    text: str

    @cached_property
    def iso(self) -> tuple[str, str, str]:
        """`start`, `earliest` and `latest` as ISO text, written once for each date: the read
        models store them for every step, and parse_date hands out one object per text."""
        return self.start.isoformat(), self.earliest.isoformat(), self.latest.isoformat()

    @property
    def exact(self) -> bool:
        return self.earliest == self.latest

    def __str__(self) -> str:
        return self.text


def parse_date(text: str, what: str = "date") -> PartialDate:
    """Parse an EDTF date, raising InvalidInput that names the value and the accepted forms."""
    cleaned = text.strip() if isinstance(text, str) else ""
    if not cleaned:
        raise InvalidInput(f"{what} is empty: give {DATE_HELP}")
    return _plain(cleaned) or _parse(cleaned, what)


@lru_cache(maxsize=1 << 16)
def _plain(text: str) -> PartialDate | None:
    """A date without qualifiers (2022, 2024-03, 2024-03-14), read without the EDTF grammar,
    which costs milliseconds a date: a case's whole history is read on every replay. The
    same span edtf gives (tests/test_performance_paths.py compares them); anything else,
    including impossible days, goes to edtf for its verdict and message."""
    if not PLAIN.match(text):
        return None
    year = int(text[:4])
    month = int(text[5:7]) if len(text) > 4 else None
    day = int(text[8:10]) if len(text) > 7 else None
    try:
        first = dt.date(year, 1 if month is None else month, 1 if day is None else day)
        if day is not None:
            last = first
        elif month is not None and month < 12:
            last = dt.date(year, month + 1, 1) - dt.timedelta(days=1)
        else:
            last = dt.date(year, 12, 31)
    except (ValueError, OverflowError):
        return None
    return PartialDate(start=first, earliest=first, latest=last, text=text)


@lru_cache(maxsize=4096)
def _parse(text: str, what: str) -> PartialDate:
    import edtf  # the parser is heavy; keep `--help` fast

    try:
        parsed = edtf.parse_edtf(text)
    except Exception:
        raise InvalidInput(
            f"{what} {text!r} is not a valid date: use {DATE_HELP} (e.g. 2022, 2024-03, 2024-03-14)"
        ) from None
    kind = type(parsed).__name__
    if kind not in {"Date", "UncertainOrApproximate", "Unspecified"}:
        raise InvalidInput(f"{what} {text!r} is an EDTF {kind}, not a single date: use {DATE_HELP}")
    try:
        start = _to_date(parsed.lower_strict())
        earliest = _to_date(parsed.lower_fuzzy())
        latest = _to_date(parsed.upper_fuzzy())
    except (ValueError, OverflowError) as error:
        if "day" in str(error):  # edtf accepts 29 February of any year; the calendar does not
            raise InvalidInput(
                f"{what} {text!r} is not a day of the calendar ({error}): check the day and month"
            ) from None
        raise InvalidInput(f"{what} {text!r} is out of range: use a year from 1 to 9999") from None
    return PartialDate(start=start, earliest=earliest, latest=latest, text=text)


def _to_date(value: object) -> dt.date:
    import time

    assert isinstance(value, time.struct_time)
    return dt.date(value.tm_year, value.tm_mon, value.tm_mday)


def today() -> PartialDate:
    day = dt.datetime.now(dt.UTC).date()
    return PartialDate(start=day, earliest=day, latest=day, text=day.isoformat())


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_timestamp(text: str, what: str = "timestamp") -> dt.datetime:
    """ISO 8601 with a zone (Z, +01:00), or a plain date meaning the end of that day UTC."""
    cleaned = text.strip()
    try:
        day = dt.date.fromisoformat(cleaned)
    except ValueError:
        pass
    else:
        if len(cleaned) == 10:
            return dt.datetime.combine(day, dt.time.max, tzinfo=dt.UTC)
    try:
        stamp = dt.datetime.fromisoformat(cleaned.replace("z", "Z"))
    except ValueError:
        raise InvalidInput(
            f"{what} {text!r} is not a timestamp: use ISO 8601 with a zone, "
            "e.g. 2024-03-14T09:30:00Z or 2024-03-14T10:30:00+01:00, or a plain date YYYY-MM-DD"
        ) from None
    if stamp.tzinfo is None:
        raise InvalidInput(
            f"{what} {text!r} has no time zone: add Z or an offset such as +01:00 "
            f"(e.g. {cleaned}Z), or give a plain date YYYY-MM-DD"
        )
    return stamp.astimezone(dt.UTC)
