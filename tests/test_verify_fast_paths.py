"""verify's fast paths give the slow ones' answers: the canonical encoder's bytes are those of
json.dumps with the same options, every stored event's hash is the one the old formula gives,
and the checker's inlined decoding builds the event the mapper builds (or raises what it
raises). No timings here: bench/run.py measures."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from twinflow import integrity, verify
from twinflow.application import Register


def _reference_canonical(value: Any) -> bytes:
    """integrity.canonical as it was first written."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=integrity._plain
    ).encode()


def _reference_hash(event: Any) -> str:
    content = {
        "kind": event.TOPIC,
        "id": event.originator_id,
        "seq": event.originator_version,
        "recorded_at": event.timestamp,
        "actor": event.actor,
        "prev": event.prev_hash,
        "fields": integrity.fields_of(event),
    }
    return hashlib.sha256(_reference_canonical(content)).hexdigest()


def _values(rng: random.Random) -> Any:
    pick = rng.randrange(9)
    if pick == 0:
        return dt.datetime(2000, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
            seconds=rng.randrange(10**9), microseconds=rng.randrange(10**6)
        )
    if pick == 1:
        return uuid4()
    if pick == 2:
        return ("Brest", "Coevorden", rng.random())
    if pick == 3:
        return {"naïve": "Ærø – ’s-Hertogenbosch", "b": None, "a": [1, 2.5, True]}
    if pick == 4:
        return [dt.datetime(2024, 3, 14, 12, 0), UUID(int=rng.getrandbits(128))]
    return rng.choice(["x", 1, -3, 0.1, None, False, "\u2028", '"quoted\\'])


def test_canonical_bytes_are_json_dumps_bytes() -> None:
    rng = random.Random(6)
    for _ in range(2000):
        value = {f"k{rng.randrange(20)}": _values(rng) for _ in range(rng.randrange(1, 8))}
        assert integrity.canonical(value) == _reference_canonical(value)
    with pytest.raises(TypeError):
        integrity.canonical({"vote": Decimal("1.5")})


def test_event_hash_takes_any_id_and_moment_as_before() -> None:
    moment = dt.datetime(2024, 3, 14, 12, 0, 1, 5, tzinfo=dt.UTC)
    ident = UUID(int=7)
    for originator_id, recorded_at in (
        (ident, moment),
        (str(ident), moment.isoformat()),  # what a forged record may hold instead
        (ident, moment.replace(tzinfo=None)),
        (ident, 12),
    ):
        content = {
            "kind": "t",
            "id": originator_id,
            "seq": 3,
            "recorded_at": recorded_at,
            "actor": "a",
            "prev": "p",
            "fields": {"x": 1},
        }
        expected = hashlib.sha256(_reference_canonical(content)).hexdigest()
        found = integrity.event_hash("t", originator_id, 3, recorded_at, "a", "p", {"x": 1})  # type: ignore[arg-type]
        assert found == expected
    with pytest.raises(TypeError):
        integrity.event_hash("t", ident, 1, Decimal(1), "a", "", {})  # type: ignore[arg-type]


@pytest.fixture
def filled(tmp_path: Path) -> Register:
    register = Register.at(str(tmp_path / "v.db"), create=True)
    rng = random.Random(27)
    for n in range(40):
        slug = f"case-{n}"
        register.open_case(
            slug, workflow="twinning", title=f"Ærø {n}", parties=["A", "B"], by="council", on="2000"
        )
        for k in range(rng.randrange(1, 12)):
            if rng.random() < 0.5:
                register.note(
                    slug,
                    "visit",
                    on=f"{2001 + k}-03-0{1 + k % 9}",
                    party="A",
                    summary=f"a visit ’{k}’",
                )
            else:
                register.decide(
                    slug,
                    "reaffirm",
                    by="council",
                    party="B",
                    on=f"{2001 + k}",
                    reason=rng.choice([None, "ja – oui", '"x"']),
                )
    return register


def _records(register: Register) -> list[StoredEvent]:
    return [record for _, record in verify.log(register.events.recorder)]


def test_inlined_decoding_builds_the_mappers_event(filled: Register) -> None:
    mapper = filled.events.mapper
    checker = verify._Checker(mapper, verify.Report(), {})
    records = _records(filled)
    assert len(records) > 200
    for record in records:
        slow, fast = mapper.to_domain_event(record), checker._to_domain_event(record)
        assert type(fast) is type(slow)
        assert vars(fast) == vars(slow)
        assert integrity.hash_of(fast) == _reference_hash(slow) == slow.hash  # type: ignore[attr-defined]
    assert filled.verify()["holds"]
    filled.close()


def _error(work: Any) -> str:
    try:
        work()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "no error"


def test_inlined_decoding_fails_as_the_mapper_does(filled: Register) -> None:
    mapper = filled.events.mapper
    checker = verify._Checker(mapper, verify.Report(), {})
    record = next(r for r in _records(filled) if r.topic == "twinflow:case:decided")
    state = json.loads(record.state)
    variants = [
        b"{not json",
        b"[1, 2]",
        b"\xff\xfe",
        json.dumps({**state, "class_version": 2}).encode(),
        json.dumps({**state, "class_version": 0}).encode(),
        json.dumps({**state, "timestamp": {"_type_": "nothing", "_data_": 1}}).encode(),
        json.dumps({**state, "decision": {"_type_": "uuid_hex", "_data_": "zz"}}).encode(),
        json.dumps({k: v for k, v in state.items() if k != "timestamp"}).encode(),
    ]
    for state_bytes in variants:
        forged = StoredEvent(
            record.originator_id, record.originator_version, record.topic, state_bytes
        )
        slow = _error(lambda f=forged: mapper.to_domain_event(f))
        fast = _error(lambda f=forged: checker._to_domain_event(f))
        assert fast == slow
        if slow == "no error":
            assert vars(checker._to_domain_event(forged)) == vars(mapper.to_domain_event(forged))
    filled.close()
