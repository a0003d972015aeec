"""Where snapshots of cases are kept: a table of their own beside the log, never in it, so
`verify`, `digest` and `export` (which read the log through the application recorder) never
see them. A snapshot is a shortcut for loading a case; losing one only costs a longer replay."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import AggregateRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder, SQLiteFactory

TABLE = "twinflow_snapshots"


class SQLiteSnapshotRecorder(SQLiteAggregateRecorder):
    """eventsourcing's SQLite recorder with an ordinary (rowid) table.

    Its own table is WITHOUT ROWID, which keeps whole rows in the b-tree: with the snapshots
    of long cases (a case's snapshot holds its whole history, megabytes for 10,000 events)
    every lookup read megabytes, about 7 ms even for an aggregate without snapshots."""

    def construct_create_table_statements(self) -> list[str]:
        return [
            statement.replace(" WITHOUT ROWID", "")
            for statement in super().construct_create_table_statements()
        ]


def recorder(factory: Any) -> AggregateRecorder | None:
    """The snapshot recorder for SQLite registers; None elsewhere (eventsourcing's own)."""
    if not isinstance(factory, SQLiteFactory):
        return None
    found = SQLiteSnapshotRecorder(factory.datastore, events_table_name=TABLE)
    if factory.env_create_table():
        found.create_table()
    return found
