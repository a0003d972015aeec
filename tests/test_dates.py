"""Valid-time dates (EDTF, as precise as the source) and transaction-time timestamps."""

from __future__ import annotations

import datetime as dt

import pytest

from twinflow.dates import parse_date, parse_timestamp
from twinflow.errors import InvalidInput

D = dt.date


@pytest.mark.parametrize(
    ("text", "start", "earliest", "latest"),
    [
        ("2022", D(2022, 1, 1), D(2022, 1, 1), D(2022, 12, 31)),
        ("2024-03", D(2024, 3, 1), D(2024, 3, 1), D(2024, 3, 31)),
        ("2024-02", D(2024, 2, 1), D(2024, 2, 1), D(2024, 2, 29)),
        ("2024-03-14", D(2024, 3, 14), D(2024, 3, 14), D(2024, 3, 14)),
        ("2024-02-29", D(2024, 2, 29), D(2024, 2, 29), D(2024, 2, 29)),
    ],
)
def test_a_date_spans_the_days_it_may_mean(
    text: str, start: dt.date, earliest: dt.date, latest: dt.date
) -> None:
    date = parse_date(text)
    assert (date.start, date.earliest, date.latest, date.text) == (start, earliest, latest, text)
    assert str(date) == text
    assert date.exact is (earliest == latest)


def test_an_uncertain_year_is_widened_beyond_the_year_as_edtf_does() -> None:
    date = parse_date("2022?")
    assert date.start == D(2022, 1, 1)
    assert date.earliest < D(2022, 1, 1) and date.latest > D(2022, 12, 31)
    assert not date.exact
    assert str(date) == "2022?"


def test_an_approximate_month_is_wider_than_the_month_and_starts_with_it() -> None:
    date = parse_date("2022-03~")
    assert date.start == D(2022, 3, 1)
    assert date.earliest < D(2022, 3, 1) and date.latest > D(2022, 3, 31)
    assert parse_date("2022-03").latest < date.latest


def test_surrounding_blanks_are_ignored() -> None:
    assert parse_date(" 2022 ").text == "2022"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2022-13-01", "date '2022-13-01' is not a valid date: use YYYY, YYYY-MM or YYYY-MM-DD"),
        ("yesterday", "date 'yesterday' is not a valid date: use YYYY, YYYY-MM or YYYY-MM-DD"),
        ("2022-02-30", "date '2022-02-30' is not a valid date: use YYYY, YYYY-MM or YYYY-MM-DD"),
        (
            "2023-02-29",
            "date '2023-02-29' is not a day of the calendar "
            "(day is out of range for month): check the day and month",
        ),
        ("2022/2023", "date '2022/2023' is an EDTF Interval, not a single date: use YYYY"),
        ("0000", "date '0000' is out of range: use a year from 1 to 9999"),
        ("", "date is empty: give YYYY, YYYY-MM or YYYY-MM-DD"),
    ],
)
def test_an_impossible_or_unparseable_date_is_refused_naming_it_and_the_forms(
    text: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_date(text)
    assert str(raised.value).startswith(message)


def test_the_error_names_the_option_it_came_from() -> None:
    with pytest.raises(InvalidInput, match=r"^--as-of 'soon' is not a valid date"):
        parse_date("soon", "--as-of")


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2024-03-14T09:30:00Z", dt.datetime(2024, 3, 14, 9, 30, tzinfo=dt.UTC)),
        ("2024-03-14T10:30:00+01:00", dt.datetime(2024, 3, 14, 9, 30, tzinfo=dt.UTC)),
        ("2024-03-14", dt.datetime(2024, 3, 14, 23, 59, 59, 999999, tzinfo=dt.UTC)),
    ],
)
def test_a_timestamp_has_a_zone_or_is_the_end_of_a_plain_day_utc(
    text: str, utc: dt.datetime
) -> None:
    stamp = parse_timestamp(text)
    assert stamp == utc
    assert stamp.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "2024-03-14T09:30",
            "timestamp '2024-03-14T09:30' has no time zone: add Z or an "
            "offset such as +01:00 (e.g. 2024-03-14T09:30Z), or give a plain "
            "date YYYY-MM-DD",
        ),
        ("2024-03", "timestamp '2024-03' is not a timestamp: use ISO 8601 with a zone"),
        ("yesterday", "timestamp 'yesterday' is not a timestamp: use ISO 8601 with a zone"),
    ],
)
def test_a_timestamp_without_a_zone_that_is_not_a_plain_date_is_refused(
    text: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_timestamp(text)
    assert str(raised.value).startswith(message)
