"""When another writer saved the same case first: wait a little before trying again, recognise
a save of our own whose acknowledgement was lost, and say what changed in one line."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

from twinflow import timeline
from twinflow.definitions import Workflow
from twinflow.domain import Case, Entry
from twinflow.errors import ConflictError, RuleViolation
from twinflow.storage import lock_timeout

RETRIES = 5  # at least this many tries, however long they take
# Random waits whose range doubles with each try (up to a limit) keep writers on one case from
# colliding in step ("full jitter"); a writer goes on trying until the lock timeout has passed,
# since losing a race is another way of waiting for one's turn.
BACKOFF = 0.01  # seconds
LONGEST = 0.2  # seconds


def attempts() -> Iterator[int]:
    """0, 1, 2, ...: the number of each try, after a random pause before every retry."""
    deadline = time.monotonic() + lock_timeout()
    tries = 0
    while True:
        yield tries
        tries += 1
        if tries >= RETRIES and time.monotonic() >= deadline:
            return
        pause(tries)


def pause(tries: int) -> None:
    time.sleep(random.uniform(0, min(LONGEST, BACKOFF * 2**tries)))


def gave_up(what: str) -> ConflictError:
    return ConflictError(
        f"{what} kept changing while you were recording (for {lock_timeout()} s, the lock "
        "timeout): try again"
    )


def is_ours(case: Case, seq: int, digest: str) -> bool:
    """Whether the case's event `seq` is the one we tried to save (its hash covers the
    recording timestamp, so no other writer's event has it): the database may have stored
    it although the connection broke before it said so, and eventsourcing then retried."""
    return case.version >= seq and case.entries[seq - 1].hash == digest


def changed(
    slug: str, case: Case, flow: Workflow, seen: int, action: str, violation: RuleViolation
) -> ConflictError:
    """The error for a decision that the case's new events made illegal."""
    steps = timeline.path(timeline.in_force(case.entries), flow)
    state = steps[-1].after if steps else None
    news = [e for e in case.entries if e.seq > seen] or case.entries[-1:]
    last = news[-1]
    more = f", and {len(news) - 1} more" if len(news) > 1 else ""
    return ConflictError(
        f"case {slug!r} changed while you were recording: it is now {state!r} "
        f"(#{last.seq} {describe(last)} by {recorder(last)}{more}); your "
        f"{action or 'decision'!r} is no longer allowed: {violation}"
    )


def describe(entry: Entry) -> str:
    if entry.kind in ("opened", "decided"):
        return str(entry.data["decision"].get("trigger") or "open")
    if entry.kind == "noted":
        return f"note {entry.data['note'].get('kind')}"
    if entry.kind == "migrated":
        return f"migration to v{entry.data['to_version']}"
    return f"{entry.kind.removesuffix('ed')}ion of #{entry.data.get('target')}"


def recorder(entry: Entry) -> str:
    behalf = entry.data.get("on_behalf_of")
    return f"{entry.actor} for {behalf}" if behalf else entry.actor
