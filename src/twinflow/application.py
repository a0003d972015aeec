"""The service layer: `Register`, the one entry point, opens a register and offers every use
case, one method each, primitives in and out ("get, check, save"). The use cases live in
`recording`, `queries` and `versioning`; what they share, in `casestore`."""

from __future__ import annotations

from twinflow.definitions import Library
from twinflow.eventlog import Events
from twinflow.queries import Queries
from twinflow.recording import Recording
from twinflow.storage import (
    Location,
    check_sqlite_file,
    guard_statements,
    install,
    installed,
    locate,
    missing_guards,
    unguarded,
)
from twinflow.versioning import Versions
from twinflow.views import Views


class Register(Recording, Queries, Versions):
    """A register of cases and the decisions about them."""

    def __init__(
        self,
        location: Location,
        library: Library | None = None,
        *,
        create: bool = True,
        unguarded_ok: bool = False,
    ) -> None:
        self.location = location
        self.library = library or Library.from_env()
        if location.kind == "sqlite":
            assert location.file is not None
            check_sqlite_file(location.file, create=create)
        self.session_user = None
        self._workflows = {}
        with self.translated():
            self.events = Events(env=location.env())
            self.views = Views(self)
            if location.kind == "postgres":
                from twinflow import postgres  # psycopg loads only where it is needed

                self.session_user = postgres.open_register(
                    location, self.events, self.views.create, create=create
                )
            elif create:
                datastore = self.events.recorder.datastore  # type: ignore[attr-defined]
                with datastore.transaction(commit=False) as cursor:
                    done = installed(cursor, location.kind)
                if not done:
                    with datastore.transaction(commit=True) as cursor:
                        install(cursor, location.kind, self.events.recorder.events_table_name)  # type: ignore[attr-defined]
                self.views.create()
            self.missing_guards = self._check_guards(unguarded_ok)

    @classmethod
    def at(
        cls,
        db: str | None = None,
        workflows: str | None = None,
        *,
        create: bool = True,
        unguarded_ok: bool = False,
    ) -> Register:
        return cls(
            locate(db), Library.from_env(workflows), create=create, unguarded_ok=unguarded_ok
        )

    def _check_guards(self, unguarded_ok: bool) -> list[str]:
        """The append-only guards that are missing; a register without them is refused
        rather than quietly re-guarded, since a dropped guard means someone bypassed twinflow:
        only `verify` opens it (unguarded_ok), to check the records and put the guards back."""
        datastore = self.events.recorder.datastore  # type: ignore[attr-defined]
        table = self.events.recorder.events_table_name  # type: ignore[attr-defined]
        with datastore.transaction(commit=False) as cursor:
            if not installed(cursor, self.location.kind):
                return []
            missing = missing_guards(cursor, self.location.kind, table)
        if missing and not unguarded_ok:
            raise unguarded(self.location.describe(), missing)
        return missing

    def reinstall_guards(self) -> None:
        datastore = self.events.recorder.datastore  # type: ignore[attr-defined]
        table = self.events.recorder.events_table_name  # type: ignore[attr-defined]
        with self.translated(), datastore.transaction(commit=True) as cursor:
            for statement in guard_statements(self.location.kind, [table]):
                cursor.execute(statement)
        self.missing_guards = []

    def close(self) -> None:
        self.events.close()
