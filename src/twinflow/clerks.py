"""Clerks on a PostgreSQL register: the rights that let a role record and read but never
alter or delete, and the check that every event names the role that stored it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import StoredEvent
from psycopg.sql import SQL, Composable, Identifier

from twinflow.postgres import EVENTS_TABLE, LOCK_FUNCTION, STAMP, schema_of
from twinflow.storage import Location

META = "twinflow_meta"
# Snapshots shorten reads, and a forged one would mislead them without touching the log:
# clerks read them; only the register's owner writes them.
SNAPSHOTS = "twinflow_snapshots"


def rights(conn: Any, location: Location, role: str, *, grant: bool) -> list[Composable]:
    """The statements that let `role` record and read but never alter or delete (grant), or
    take every right of twinflow's from it again (revoke)."""
    schema = schema_of(location)
    names = [
        row["tablename"]
        for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s "
            "AND tablename LIKE 'twinflow\\_%%' ORDER BY tablename",
            (schema,),
        ).fetchall()
    ]
    sequence = conn.execute(
        "SELECT pg_get_serial_sequence(%s, 'notification_id') AS name",
        (f"{schema}.{EVENTS_TABLE}",),
    ).fetchone()["name"]
    read_models = [n for n in names if n not in (EVENTS_TABLE, META, SNAPSHOTS)]
    who, where = Identifier(role), Identifier(schema)

    def on(*tables: str) -> Composable:
        return SQL(", ").join(SQL("{}.{}").format(where, Identifier(t)) for t in tables)

    events, lock = on(EVENTS_TABLE), SQL("{}.{}(integer)").format(where, Identifier(LOCK_FUNCTION))
    read_only = on(*(n for n in (META, SNAPSHOTS) if n in names))
    if not grant:
        return [
            SQL("REVOKE ALL ON {} FROM {}").format(on(*names), who),
            SQL("REVOKE ALL ON SEQUENCE {} FROM {}").format(SQL(sequence), who),
            SQL("REVOKE ALL ON FUNCTION {} FROM {}").format(lock, who),
            SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(where, who),
        ]
    return [
        SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            Identifier(location.env()["POSTGRES_DBNAME"]), who
        ),
        SQL("GRANT USAGE ON SCHEMA {} TO {}").format(where, who),
        # Recording is inserting; the rest is taken away, should it have been given before.
        SQL("GRANT SELECT, INSERT ON {} TO {}").format(events, who),
        SQL("REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {} FROM {}").format(
            events, who
        ),
        SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(SQL(sequence), who),
        SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(lock, who),
        SQL("GRANT SELECT ON {} TO {}").format(read_only, who),
        SQL("REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {} FROM {}").format(read_only, who),
        # The read models are derived from the log and rebuilt from it: clerks keep them.
        SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(on(*read_models), who),
    ]


@dataclass(frozen=True)
class Impostor:
    """A stored event whose actor is not the database role that stored it."""

    position: int
    topic: str
    seq: int
    actor: str
    stored_by: str

    def __str__(self) -> str:
        return (
            f"position {self.position} ({self.topic} #{self.seq}) names {self.actor!r} as "
            f"actor, but was stored by the database role {self.stored_by!r}"
        )


def impostors(conn: Any, mapper: Any) -> list[Impostor]:
    """Every event whose actor is not the role the database says stored it: written past
    twinflow, with a made-up actor."""
    found = []
    rows = conn.execute(
        SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state, {} "
            "FROM {} ORDER BY notification_id"
        ).format(Identifier(STAMP), Identifier(EVENTS_TABLE))
    )
    for row in rows:
        stored = StoredEvent(
            originator_id=row["originator_id"],
            originator_version=row["originator_version"],
            topic=row["topic"],
            state=bytes(row["state"]),
        )
        actor = getattr(mapper.to_domain_event(stored), "actor", None)
        if actor != row[STAMP]:
            found.append(
                Impostor(
                    row["notification_id"],
                    row["topic"],
                    row["originator_version"],
                    str(actor),
                    row[STAMP],
                )
            )
    return found
