"""`list` answers from the read models what replaying each case answers: every case whose
state on a date may be the one asked for, with its state, certainty, opening date of that
state and parties, on dates where a case is settled and where imprecise dates leave it open.
No timings here: bench/run.py measures."""

from __future__ import annotations

import random
from typing import Any

from tests.test_performance_paths import KNOWN_NOW, TRIGGERS, _dates, _random_date
from twinflow.application import Register
from twinflow.errors import RuleViolation

# Names that a hand-split list of JSON arrays would get wrong: commas, quotes, brackets,
# backslashes and letters beyond ASCII.
PARTIES = (
    ["Coevorden", "Brest"],
    ['Emmen, "the Hondsrug"', "Haren [Gr]"],
    ["Łódź", "Kraków\\Nowa Huta", "Zürich"],
    ["Enschede"],
)
STATES = ("established", "active", "suspended", "frozen", "dormant", "ended")


def _fill(register: Register, rng: random.Random, cases: int, tries: int) -> list[str]:
    """Cases with different parties and workflows, each with random, often imprecise and
    backdated decisions (the illegal ones are refused and skipped), the read models
    catching up now and then on the way."""
    slugs = []
    for n in range(cases):
        slug = f"case-{rng.randint(0, 999):03d}-{n}"
        register.open_case(
            slug,
            workflow="twinning",
            title=f"Case {n}",
            parties=PARTIES[n % len(PARTIES)],
            by="council",
            on=rng.choice(("2000", "2001-05", "2003~", "2014")),
        )
        slugs.append(slug)
        for _ in range(tries):
            try:
                register.decide(
                    slug,
                    rng.choice(TRIGGERS),
                    by="council",
                    party=PARTIES[n % len(PARTIES)][0],
                    on=_random_date(rng),
                    reason="a reason",
                )
            except RuleViolation:
                continue
        if n % 2:
            register.list_cases()
    return slugs


def _replayed_listing(register: Register, slug: str, as_of: str) -> dict[str, Any]:
    """The row `list` should give for a case, from the full replay of its log."""
    status = register.status(slug, as_of=as_of, known_at=KNOWN_NOW)
    return {
        "case": slug,
        "title": status["title"],
        "workflow": status["workflow"],
        "version": status["version"],
        "state": status["state"],
        "certain": status["certain"],
        "since": status["since"],
        "possible": status.get("possible", [status["state"]]),
        "parties": status["parties"],
    }


def test_every_listing_is_the_replayed_status_of_every_case(register: Register) -> None:
    slugs = sorted(_fill(register, random.Random(8), cases=9, tries=12))
    seen_uncertain = seen_settled = 0
    for as_of in [*_dates(1999, 2015)[::3], "2999"]:
        expected = [_replayed_listing(register, slug, as_of) for slug in slugs]
        assert register.list_cases(as_of=as_of) == expected, as_of
        for state in STATES:
            wanted = [row for row in expected if state in row["possible"]]
            assert register.list_cases(as_of=as_of, state=state) == wanted, (as_of, state)
        seen_uncertain += sum(not row["certain"] for row in expected)
        seen_settled += sum(row["certain"] and row["state"] is not None for row in expected)
    assert seen_uncertain > 10 and seen_settled > 10  # both kinds of row were compared


def test_filters_keep_the_replayed_rows_they_name(register: Register) -> None:
    slugs = sorted(_fill(register, random.Random(3), cases=8, tries=8))
    for as_of in ("2002", "2006-06", "2011~", "2999"):
        expected = [_replayed_listing(register, slug, as_of) for slug in slugs]
        for party in ("Łódź", 'Emmen, "the Hondsrug"', "Enschede", "Minsk"):
            named = [row for row in expected if party in row["parties"]]
            assert register.list_cases(as_of=as_of, party=party) == named, (as_of, party)
            for state in ("active", "suspended"):
                both = [row for row in named if state in row["possible"]]
                listed = register.list_cases(
                    as_of=as_of, party=party, state=state, workflow="twinning"
                )
                assert listed == both, (as_of, party, state)
        assert register.list_cases(as_of=as_of, workflow="motion") == []
        assert register.list_cases(as_of=as_of, workflow="twinning") == expected


def test_listed_rows_are_independent_of_each_other(register: Register) -> None:
    for slug in ("a-b", "c-d"):
        register.open_case(
            slug, workflow="twinning", title=slug, parties=PARTIES[0], by="council", on="2000"
        )
    first, second = register.list_cases(as_of="2010", state="active")
    first["parties"].append("changed")
    first["possible"].append("changed")
    assert second["parties"] == PARTIES[0] and second["possible"] == ["active"]


def test_the_listing_reads_plain_tuples_from_either_backend(register: Register) -> None:
    """Rows by position, not the datastore's mappings: what keeps a long listing fast."""
    with register.views.cursor(commit=False) as cursor:
        register.views._tuples(cursor)
        cursor.execute("SELECT 1, 'a'")
        assert type(cursor.fetchone()) is tuple
