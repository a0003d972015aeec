"""The eventsourcing Application that holds every twinflow event, and the store's errors
turned into one clear line."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import (
    EventStore,
    InfrastructureFactoryError,
    IntegrityError,
    JSONTranscoder,
    PersistenceError,
)

from twinflow import snapshots
from twinflow.domain import Case, EntryAsList, replay
from twinflow.errors import StorageError, TwinflowError
from twinflow.storage import Location, cannot_open, not_writable_message

SNAPSHOT_INTERVAL = 1000


class Events(Application[UUID]):
    """The eventsourcing application holding every twinflow event."""

    name = "twinflow"
    # A case is loaded from its latest snapshot and at most this many events after it.
    # Snapshots sit in their own table, outside the log that verify, digest and export read.
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {Case: SNAPSHOT_INTERVAL}
    snapshotting_projectors: ClassVar[dict[type[Any], Any]] = {Case: replay}

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(EntryAsList())

    def construct_snapshot_store(self) -> EventStore[UUID]:
        recorder = snapshots.recorder(self.factory)
        if recorder is None:
            return super().construct_snapshot_store()
        return self.factory.event_store(mapper=self.mapper, recorder=recorder)

    def take_snapshot(
        self, aggregate_id: UUID, version: int | None = None, projector_func: Any = replay
    ) -> None:
        # Taken after the events were saved: a snapshot that cannot be written (a clerk
        # without rights on the table, a concurrent writer taking the same one) only means
        # the next read replays a few more events, never that the decision was not recorded.
        with suppress(PersistenceError):
            super().take_snapshot(aggregate_id, version, projector_func)


@contextmanager
def translated(location: Location) -> Iterator[None]:
    """Turn the store's errors into one clear line."""
    try:
        yield
    except TwinflowError:
        raise
    except IntegrityError:
        raise
    except PersistenceError as exc:
        raise StorageError(_storage_message(exc, location)) from None
    except sqlite3.OperationalError as exc:  # raw from eventsourcing's connection set-up
        if not _busy(str(exc)):  # the rest is for the caller to say
            raise
        raise StorageError(_storage_message(exc, location)) from None
    except InfrastructureFactoryError as exc:  # an eventsourcing setting in the environment
        raise StorageError(
            f"{str(exc).strip()}: twinflow chooses its own storage from --db; unset that "
            "environment variable (eventsourcing reads TWINFLOW_* and unprefixed names)"
        ) from None


def _busy(text: str) -> bool:
    return "locked" in text or "busy" in text or "lock timeout" in text


def _storage_message(exc: Exception, location: Location) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if _busy(text):
        return (
            f"the register is busy: another twinflow is writing ({location.describe()}); try again"
        )
    if "append-only" in text:
        return text.removeprefix("twinflow: ")
    if location.kind == "postgres":
        from twinflow import postgres

        return postgres.explain(str(exc), location)
    if cannot_open(text) and location.path is not None and location.path.exists():
        return not_writable_message(location.describe(), text)  # intact, but not writable
    if "unable to open database file" in text:  # SQLite could not create the file
        return (
            f"cannot open or create the register {location.describe()} ({text}): check that "
            "its folder is writable, or choose another --db"
        )
    return (
        f"cannot use the register {location.describe()}: {text}; check the file, or restore "
        "it from a backup"
    )
