"""The import's event records (eventbytes.py) are those the domain and eventsourcing's mapper
make: the same topic, version, stored state and hash chain, byte for byte, whether the JSON is
written by eventbytes itself or by the reference encoders, on new and on existing cases. No
timings here: bench/run.py measures."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from twinflow import integrity
from twinflow.application import Register
from twinflow.decisions import decision_fields, note_fields
from twinflow.domain import Case
from twinflow.eventbytes import Builder, Chain, Record, _iso
from twinflow.exchange import import_file

TEXTS = [
    "x",
    "",
    "Ærø – ’s-Hertogenbosch",
    '"quoted\\',
    "line\nbreak\ttab\r\x00\x1f\x7f",
    "\u2028\u2029",
    "emoji 🚲 and 𝄞",
    "100% sure %s %(x)s %%",
    ":colon",
    "{}[],:",
]


def clock() -> Callable[[], dt.datetime]:
    """Deterministic moments, every third one on a whole second (isoformat drops the
    microseconds then)."""
    start = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)
    counter = itertools.count()

    def now() -> dt.datetime:
        n = next(counter)
        return start + dt.timedelta(seconds=n, microseconds=0 if n % 3 == 0 else n * 7919)

    return now


@pytest.fixture
def register(tmp_path: Path) -> Iterator[Register]:
    reg = Register.at(str(tmp_path / "r.db"), create=True)
    yield reg
    reg.close()


@pytest.fixture
def referred(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The versions of the events that went to the reference encoders."""
    seen: list[int] = []
    reference = Chain.reference

    def spy(self: Chain, layout: Any, version: int, *args: Any) -> Any:
        seen.append(version)
        return reference(self, layout, version, *args)

    monkeypatch.setattr(Chain, "reference", spy)
    return seen


def text(rng: random.Random) -> str:
    return rng.choice(TEXTS) + rng.choice(TEXTS)


def maybe(rng: random.Random) -> str | None:
    return text(rng) or None if rng.random() < 0.5 else None


def rows(rng: random.Random, count: int) -> list[tuple[str, dict[str, Any]]]:
    """Decisions and notes as `decide` and `note` would record them, with odd text."""
    made: list[tuple[str, dict[str, Any]]] = []
    for _ in range(count):
        sources = [text(rng) for _ in range(rng.randrange(3))]
        if rng.random() < 0.3:
            made.append(
                (
                    "note",
                    note_fields(
                        rng.choice(["visit", "letter"]),
                        on=rng.choice(["2001", "2002-03", "2003-04-05", "2004?"]),
                        summary="s " + text(rng),
                        party=maybe(rng),
                        sources=sources,
                    ),
                )
            )
        else:
            made.append(
                (
                    "decide",
                    decision_fields(
                        rng.choice(["suspend", "resume", "reaffirm"]),
                        by=text(rng),
                        party=maybe(rng),
                        on=rng.choice(["2001", "2002-03", "2003-04-05", "2004~"]),
                        effective=rng.choice([None, "2005"]),
                        published=rng.choice([None, "2006-01"]),
                        body_name=maybe(rng),
                        scope=maybe(rng),
                        vote=maybe(rng),
                        reason=maybe(rng),
                        reference=maybe(rng),
                        sources=sources,
                    ),
                )
            )
    return made


def through_domain(
    monkeypatch: pytest.MonkeyPatch,
    case: Case,
    steps: list[tuple[str, dict[str, Any]]],
    actor: str,
    on_behalf_of: str | None,
    mapper: Any,
) -> list[Record]:
    for kind, values in steps:
        getattr(case, kind)(values, actor, on_behalf_of)
    monkeypatch.undo()
    return [
        (e.originator_id.hex, e.originator_version, e.topic, e.state)
        for e in map(mapper.to_stored_event, case.collect_events())
    ]


@pytest.mark.parametrize("direct", [True, False], ids=["written-here", "reference-encoders"])
@pytest.mark.parametrize("seed", range(6))
def test_new_cases_get_the_records_the_domain_gives(
    register: Register,
    monkeypatch: pytest.MonkeyPatch,
    referred: list[int],
    direct: bool,
    seed: int,
) -> None:
    rng = random.Random(seed)
    flow = register.library.get("twinning")
    mapper = register.events.mapper
    actor = rng.choice(["clerk-a", ":x", "100%", "Zoë \u2028"])
    on_behalf_of = rng.choice([None, "clerk-b", 'o"dd'])
    slug = f"case-{seed}"
    title, parties = text(rng) or "t", [text(rng) or "A", "B"]
    opening = decision_fields(
        "open",
        by="council",
        party=None,
        on="1990",
        effective=None,
        reason=maybe(rng),
        sources=[text(rng)],
    )
    steps = rows(rng, 25)

    builder = Builder(mapper, actor, on_behalf_of, clock=clock())
    builder.direct = builder.direct and direct
    chain = builder.open(slug, title, parties, flow, dict(opening))
    for kind, values in steps:
        getattr(chain, kind)(dict(values))

    monkeypatch.setattr(Case.Event, "create_timestamp", staticmethod(clock()))
    case = Case.open(slug, title, parties, flow, dict(opening), actor, on_behalf_of)
    expected = through_domain(monkeypatch, case, steps, actor, on_behalf_of, mapper)

    assert chain.records == expected
    assert chain.last_hash == case.last_hash
    assert chain.version == case.version == len(steps) + 1
    assert referred == ([] if direct else list(range(1, len(steps) + 2)))


def test_an_existing_case_is_extended_after_its_last_event(
    register: Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = register.library.get("twinning")
    register.open_case(
        "old", workflow="twinning", title="Old", parties=["A", "B"], by="council", on="1990"
    )
    register.decide("old", "suspend", by="council", party="A", on="2000")
    steps = rows(random.Random(7), 10)
    actor = "clerk-a"

    chain = Builder(register.events.mapper, actor, None, clock=clock()).extend(
        register.get_case("old")
    )
    for kind, values in steps:
        getattr(chain, kind)(dict(values))

    case = register.get_case("old")
    monkeypatch.setattr(Case.Event, "create_timestamp", staticmethod(clock()))
    expected = through_domain(monkeypatch, case, steps, actor, None, register.events.mapper)
    assert chain.records == expected
    assert [r[1] for r in chain.records] == list(range(3, 13))
    assert flow.name == case.workflow


@pytest.mark.parametrize(
    ("odd", "written_here"),
    [
        (1.5, False),
        (float("nan"), False),
        (10**16 * 1.0, False),
        (("a", "b"), False),
        (2**64, False),  # beyond what orjson writes
        (-(2**63) - 1, False),
        (dt.datetime(2026, 1, 1, tzinfo=dt.UTC), False),
        (UUID(int=7), False),
        ({1: "x"}, False),
        ({"nested": {"deeper": [1, "ü\n"], "b": None}, "a": True}, True),
        ([1, [2, None], True, False, -3, 2**64 - 1, -(2**63)], True),
    ],
    ids=[
        "float",
        "nan",
        "large-float",
        "tuple",
        "int-2**64",
        "int-below-64-bits",
        "datetime",
        "uuid",
        "int-key",
        "nested-object",
        "nested-list",
    ],
)
def test_values_outside_what_orjson_writes_as_json_go_to_the_reference_encoders(
    register: Register,
    monkeypatch: pytest.MonkeyPatch,
    referred: list[int],
    odd: Any,
    written_here: bool,
) -> None:
    flow = register.library.get("twinning")
    mapper = register.events.mapper
    opening = decision_fields("open", by="council", party=None, on="1990", effective=None)
    plain = decision_fields("reaffirm", by="council", party="A", on="1991", effective=None)
    steps: list[tuple[str, dict[str, Any]]] = [
        ("decide", {"trigger": "reaffirm", "odd": odd}),
        ("decide", plain),  # written here again, chained to the one before
    ]

    chain = Builder(mapper, "a", None, clock=clock()).open("c", "T", ["A"], flow, dict(opening))
    for kind, values in steps:
        getattr(chain, kind)(dict(values))

    assert referred == ([] if written_here else [2])
    monkeypatch.setattr(Case.Event, "create_timestamp", staticmethod(clock()))
    case = Case.open("c", "T", ["A"], flow, dict(opening), "a")
    assert chain.records == through_domain(monkeypatch, case, steps, "a", None, mapper)


def test_every_imported_record_is_what_the_mapper_encodes_and_hashes_as_recorded(
    register: Register, tmp_path: Path
) -> None:
    """A varied file imported for real: every stored record decodes to an event the mapper
    encodes to the very same bytes, whose hash is its content's and chains to the one before."""
    header = "case,workflow,action,by,party,decided_on,effective_on,reason,title,parties,summary\n"
    body = "".join(
        f'c{n},twinning,open,council,,1990,,"x, ""{n}""",Twinning {n} 🚲,"A; B; Zoë",\n'
        f'c{n},,note:visit,,A,1992-05,,,,,"100% \\ visit\u2028 {n}"\n'
        f"c{n},,suspend,executive,B,2001,2001-02,,,,\n"
        f"c{n},,resume,council,A,2003-04-01,,talks again,,,\n"
        for n in range(30)
    )
    path = tmp_path / "rows.csv"
    path.write_text(header + body, encoding="utf-8")
    import_file(register, path, actor="clerk %s")

    mapper = register.events.mapper
    last: dict[Any, str] = {}
    records = register.events.recorder.select_notifications(start=1, limit=1000)
    assert len(records) == 1 + 30 * 4
    for record in records:
        event: Any = mapper.to_domain_event(record)
        again = mapper.to_stored_event(event)
        assert (again.topic, again.state) == (record.topic, record.state)
        assert integrity.hash_of(event) == event.hash
        assert event.prev_hash == last.get(event.originator_id, "")
        last[event.originator_id] = event.hash
    assert register.verify()["holds"]


def test_a_compressor_the_register_is_set_up_with_is_applied_as_the_mapper_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMPRESSOR_TOPIC", "eventsourcing.compressor:ZlibCompressor")
    register = Register.at(str(tmp_path / "z.db"), create=True)
    mapper = register.events.mapper
    assert mapper.compressor is not None
    flow = register.library.get("twinning")
    opening = decision_fields("open", by="council", party=None, on="1990", effective=None)
    steps = rows(random.Random(3), 5)

    chain = Builder(mapper, "a", None, clock=clock()).open("z", "T", ["A"], flow, dict(opening))
    for kind, values in steps:
        getattr(chain, kind)(dict(values))

    monkeypatch.setattr(Case.Event, "create_timestamp", staticmethod(clock()))
    case = Case.open("z", "T", ["A"], flow, dict(opening), "a")
    assert chain.records == through_domain(monkeypatch, case, steps, "a", None, mapper)
    register.close()


def test_the_moment_is_written_as_isoformat_writes_it() -> None:
    """orjson writes a UTC moment for eventbytes; the text is isoformat's, whole seconds
    (no microseconds) included. Moments in other zones go to isoformat itself."""
    rng = random.Random(5)
    for _ in range(20_000):
        moment = dt.datetime(
            rng.randrange(1, 10_000),
            rng.randrange(1, 13),
            rng.randrange(1, 29),
            rng.randrange(24),
            rng.randrange(60),
            rng.randrange(60),
            rng.choice([0, 1, 999_999, rng.randrange(1_000_000)]),
            tzinfo=dt.UTC,
        )
        assert _iso(moment) == moment.isoformat()
    now = Case.Event.create_timestamp()
    assert now.tzinfo is dt.UTC  # the clock every case event is stamped with takes the fast way
    assert _iso(now) == now.isoformat()
    for zone in (dt.timezone(dt.timedelta(hours=1)), dt.timezone(dt.timedelta(seconds=-37))):
        moment = dt.datetime(2026, 11, 28, 9, 0, 0, 5, tzinfo=zone)
        assert _iso(moment) == moment.isoformat()
