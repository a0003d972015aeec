"""The bulk reader gives what the recorder gives: the same records, in the same order, with
the same positions, on both backends and across batch boundaries; its decoder builds the
mapper's events."""

from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any

import orjson
from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, UUIDAsHex

from twinflow import integrity, logread
from twinflow.application import Register
from twinflow.domain import EntryAsList


def _fill(register: Register, cases: int) -> None:
    for n in range(cases):
        slug = f"case-{n}"
        register.open_case(
            slug, workflow="twinning", title=f"Ærø {n}", parties=["A", "B"], by="council", on="2000"
        )
        register.decide(slug, "suspend", by="executive", party="B", on=f"{2001 + n}")
        register.note(slug, "visit", on=f"{2002 + n}-05", party="A", summary="ja – oui")


def test_batches_read_what_the_recorder_reads(register: Register) -> None:
    _fill(register, 7)
    recorder = register.events.recorder
    expected = recorder.select_notifications(start=1, limit=10_000)
    assert len(expected) > 20
    for size in (1, 4, 1000):
        found = [r for batch in logread.batches(recorder, size=size) for r in batch]
        assert [tuple(r) for r in found] == [
            (n.id, n.originator_id, n.originator_version, n.topic, n.state) for n in expected
        ]
        assert all(len(batch) <= size for batch in logread.batches(recorder, size=size))
    middle = expected[5].id
    upto = expected[12].id
    window = [r.id for b in logread.batches(recorder, after=middle, upto=upto) for r in b]
    assert window == [n.id for n in expected if middle < n.id <= upto]
    assert list(logread.batches(recorder, after=expected[-1].id)) == []


def test_the_decoder_builds_the_mappers_events(register: Register) -> None:
    _fill(register, 3)
    mapper = register.events.mapper
    decode = logread.Decoder(mapper)
    for batch in logread.batches(register.events.recorder):
        for record in batch:
            fast, slow = decode(record), mapper.to_domain_event(record)
            assert type(fast) is type(slow)
            assert vars(fast) == vars(slow)


def _value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["str", "str", "int", "none", "bool", "float"] + (["dict", "list"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "str":
        alphabet = 'abc XYZ0123456789-:.,eE"\\/\n\t\x01\x1f\x7fÆrøé–’ä中😀_type_{}[]'
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
    if kind == "int":
        return rng.choice([0, -1, 7, 2**31, -(2**63), 2**63 - 1, 2**64, 10**30])
    if kind == "float":
        return rng.choice([0.5, -1.25, 1e16, 1e-7, 3.0, 2.5e300, float("nan"), float("inf")])
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "list":
        return [_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {_value_key(rng): _value(rng, depth + 1) for _ in range(rng.randrange(0, 5))}


def _value_key(rng: random.Random) -> str:
    return rng.choice(["trigger", "party", "_type_", "_data_", "ä", "Z", "a b", "", "é中"])


def test_plain_json_is_read_and_written_as_the_json_module_does() -> None:
    """The fast path's promise, on thousands of random states: where `plain` says yes,
    orjson decodes to the transcoder's values and writes the canonical encoder's bytes."""
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), EntryAsList()):
        transcoder.register(transcoding)
    rng = random.Random(28)
    plain_seen = read_seen = 0
    for _ in range(4000):
        state = {
            "timestamp": dt.datetime(2026, 11, 28, 1, 2, 3, rng.randrange(10**6), tzinfo=dt.UTC),
            "actor": _value(rng),
            "decision": _value(rng),
        }
        if rng.random() < 0.3:
            state[_value_key(rng)] = _value(rng)
        raw = transcoder.encode(state)
        try:
            reference = transcoder.decode(raw)
        except Exception:  # a random dict that looks typed: never the fast path's to read
            assert logread.plain_state(raw) is None
            continue
        read = logread.plain_state(raw, written=False)  # only read: escapes allowed
        if read is not None:
            read_seen += b"\\u" in raw
            assert read == reference
            assert [type(v) for v in read.values()] == [type(v) for v in reference.values()]
        fast = logread.plain_state(raw)
        if fast is None:
            continue
        plain_seen += 1
        assert fast == reference
        assert [type(v) for v in fast.values()] == [type(v) for v in reference.values()]
        content = {k: v for k, v in reference.items() if k != "timestamp"}
        content["at"] = reference["timestamp"].isoformat()
        assert orjson.dumps(content, option=orjson.OPT_SORT_KEYS) == integrity.canonical(content)
    assert plain_seen > 1000 and read_seen > 200  # escaped characters among them


def test_json_that_is_not_plain_goes_the_json_modules_way() -> None:
    stamp = b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-11-28T00:00:00+00:00"},'
    assert logread.plain_state(stamp + b'"x":[1,{"y":null}]}') is not None
    for rest in (
        b'"x":1.5}',
        b'"x":[1e16]}',
        b'"x":{"y": -2E3}}',
        b'"x":123456789012345678901234567890}',
        b'"x" :\t1.5}',  # blanks where json.dumps's default separators put them
        b'"x":["a, b", \n2.5]}',
        b'"x":"T10:00:00.5","y":[true,0.5]}',
        b'"x":NaN}',
        b'"x":"\\u00e9"}',
        b'"x":{"_type_":"uuid_hex","_data_":"00"}}',
    ):
        assert logread.plain_state(stamp + rest) is None, rest
    assert logread.plain_state("text, not bytes") is None
    # Only read, numbers are read where orjson writes them back as they were: then exactly.
    for rest in (
        b'"x":123456789012345678901234567890}',
        b'"x":1e-07}',  # as the json module writes it, not as orjson does
        b'"x":1e16}',
        b'"x" :\t1}',
        b'"x":NaN}',
    ):
        assert logread.plain_state(stamp + rest, written=False) is None, rest
    for rest in (b'"x":[0.5,-1.25,2.5e+300,1e+16,7]}', b'"x":18446744073709551615}'):
        read = logread.plain_state(stamp + rest, written=False)
        assert read is not None and read["x"] == json.loads(stamp + rest)["x"], rest
    # Nested deeper than orjson writes, though not than it reads: the json module's to read.
    deep = stamp + b'"x":' + b"[" * 300 + b"]" * 300 + b"}"
    assert type(orjson.loads(deep)["x"]) is list
    assert logread.plain_state(deep, written=False) is None
    # Only read, escapes as orjson writes them (of control characters, quotes, backslashes)
    # are read as the json module reads them; others are the json module's to read.
    read = logread.plain_state(stamp + b'"x":"\\u0001\\n\\"\\\\"}', written=False)
    assert read is not None and read["x"] == "\u0001\n\"\\"
    assert logread.plain_state(stamp + b'"x":"\\u00e9"}', written=False) is None
    assert logread.plain_state(stamp + b'"x":"\\ud800"}', written=False) is None
    assert json.loads(stamp + b'"x":"\\ud800"}')["x"] == "\ud800"  # half a character
    assert logread.plain_state(b'{"timestamp":{"_type_":"decimal_str","_data_":"1"}}') is None
