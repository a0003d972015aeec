"""Hashes that make tampering evident: each event's hash covers a canonical encoding of its
whole content and the hash of the case's previous event."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import orjson

# Attributes every event has that the hash covers by name rather than among the fields.
ENVELOPE = frozenset(
    {
        "originator_id",
        "originator_version",
        "originator_topic",
        "timestamp",
        "actor",
        "prev_hash",
        "hash",
    }
)


def canonical(value: Any) -> bytes:
    """One byte string per value: sorted keys, no spaces, UTF-8, ISO timestamps."""
    return _ENCODER.encode(value).encode()


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__} canonically")


# What json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
# default=_plain) builds on every call, built once: the same bytes, without the set-up.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain
)


def event_hash(
    topic: str,
    originator_id: UUID | str,  # or its text, as str() gives it
    seq: int,
    recorded_at: dt.datetime | str,  # or its text, as isoformat() gives it
    actor: str,
    prev_hash: str,
    fields: Mapping[str, Any],
    *,
    plain: bool = False,
) -> str:
    # The id and the moment as _plain would give them to the encoder (the same bytes), so
    # that encoding an event calls back into Python only for what its fields hold.
    content = {
        "kind": topic,
        "id": str(originator_id) if type(originator_id) is UUID else originator_id,
        "seq": seq,
        "recorded_at": (
            recorded_at.isoformat() if type(recorded_at) is dt.datetime else recorded_at
        ),
        "actor": actor,
        "prev": prev_hash,
        "fields": dict(fields),
    }
    if plain:  # fields read from plain JSON (logread.plain_state): orjson writes the same bytes
        try:
            return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()
        except TypeError:  # orjson.JSONEncodeError: a value only the json module takes
            pass
    return hashlib.sha256(canonical(content)).hexdigest()


def fields_of(event: object) -> dict[str, Any]:
    """The content fields of a decoded event: everything but the envelope."""
    return {k: v for k, v in vars(event).items() if k not in ENVELOPE}


def hash_of(event: Any, *, plain: bool = False) -> str:
    """Recompute the hash a stored event should carry (`plain`: decoded from plain JSON)."""
    return event_hash(
        event.TOPIC,
        event.originator_id,
        event.originator_version,
        event.timestamp,
        event.actor,
        event.prev_hash,
        fields_of(event),
        plain=plain,
    )
