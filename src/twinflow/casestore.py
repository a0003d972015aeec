"""What every use case of a register stands on: its store, who records, loading a case, and
the stored workflow version a case is judged by (never today's file)."""

from __future__ import annotations

import datetime as dt
import getpass
import os
from contextlib import AbstractContextManager

from eventsourcing.application import AggregateNotFoundError

from twinflow import definitions, eventlog, timeline
from twinflow.definitions import Library, Workflow
from twinflow.domain import Case, StoredWorkflow, case_id, check_slug, replay, workflow_id
from twinflow.errors import NotFound, WorkflowFileError
from twinflow.eventlog import Events
from twinflow.storage import Location
from twinflow.views import Views


def default_actor() -> str:
    actor = os.environ.get("TWINFLOW_ACTOR", "").strip()
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class CaseStore:
    """The state the use cases of a register share, and the reads they all make of its
    store; `Register` sets it up."""

    location: Location
    library: Library
    events: Events
    views: Views
    # The authenticated database role, which a clerk cannot choose (None on SQLite).
    session_user: str | None
    missing_guards: list[str]
    _workflows: dict[str, Workflow]

    def identity(self, actor: str | None) -> tuple[str, str | None]:
        """Who records, and for whom: on PostgreSQL the authenticated role records, and a
        clerk named by --actor (who could be anyone) is kept beside it as on_behalf_of."""
        if self.session_user is None:
            return actor or default_actor(), None
        given = actor.strip() if actor else ""
        return self.session_user, given if given and given != self.session_user else None

    def translated(self) -> AbstractContextManager[None]:
        """Turn the store's errors into one clear line."""
        return eventlog.translated(self.location)

    def get_case(self, slug: str) -> Case:
        case = self._find_case(slug)
        if case is None:
            check_slug(slug)
            raise NotFound(
                f"unknown case {slug!r}: see `twinflow list` for the cases, or "
                f"open it with `twinflow open {slug} ...`"
            )
        return case

    def _find_case(self, slug: str) -> Case | None:
        try:
            case: Case = self.events.repository.get(case_id(slug), projector_func=replay)
        except AggregateNotFoundError:
            return None
        return case

    def _find_stored(self, name: str, version: int) -> StoredWorkflow | None:
        try:
            stored: StoredWorkflow = self.events.repository.get(workflow_id(name, version))
        except AggregateNotFoundError:
            return None
        return stored

    def stored_workflow(self, name: str, version: int) -> Workflow:
        """The register's copy of a workflow version, whatever its file says today."""
        with self.translated():
            stored = self._find_stored(name, version)
        if stored is None:
            raise NotFound(f"the register holds no {name!r} v{version}")
        return definitions.from_document(stored.document)

    def _stored_workflow(self, flow: Workflow) -> StoredWorkflow | None:
        """The stored copy of this workflow version, refusing a file changed without a bump."""
        try:
            stored: StoredWorkflow = self.events.repository.get(
                workflow_id(flow.name, flow.version)
            )
        except AggregateNotFoundError:
            return None
        if stored.digest != flow.digest:
            raise _changed_without_bump(flow, self.library)
        return stored

    def workflow_of(
        self, case: Case, *, check_file: bool = False, known_at: dt.datetime | None = None
    ) -> Workflow:
        """The stored definition a case is judged by (never today's file): the version in
        force now, or at `known_at`, before any migration recorded after it."""
        version, digest = (
            timeline.version_in_force(case.entries, known_at)
            if known_at is not None
            else (case.workflow_version, case.workflow_digest)
        )
        flow = self.definition_of(case.workflow, version, digest)
        if check_file:
            try:
                current = self.library.get(case.workflow)
            except NotFound:
                return flow
            if current.version == flow.version and current.digest != flow.digest:
                raise _changed_without_bump(current, self.library)
        return flow

    def definition_of(self, name: str, version: int, digest: str) -> Workflow:
        """The stored definition of a workflow version (its digest given), read once per
        register: what cases on that version are judged by."""
        flow = self._workflows.get(digest)
        if flow is None:
            stored: StoredWorkflow = self.events.repository.get(workflow_id(name, version))
            flow = definitions.from_document(stored.document)
            self._workflows[digest] = flow
        return flow


def _changed_without_bump(flow: Workflow, library: Library) -> WorkflowFileError:
    path = library.files().get(flow.name, flow.name)
    return WorkflowFileError(
        f"workflow file {path} changed since version {flow.version} was first used by a case, "
        f"but its version is still {flow.version}: bump `version` to {flow.version + 1} "
        "(cases stay on the version they were opened with), or undo the change"
    )
