"""The service layer: one method per use case, primitives in and out ("get, check, save").
The only module that touches the eventsourcing Application."""

from __future__ import annotations

import datetime as dt
import getpass
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import (
    EventStore,
    IntegrityError,
    JSONTranscoder,
    PersistenceError,
)

from twinflow import contention, definitions, snapshots, timeline
from twinflow.dates import PartialDate, parse_date, parse_timestamp, today
from twinflow.definitions import Library, Workflow
from twinflow.domain import (
    Case,
    EntryAsList,
    StoredWorkflow,
    case_id,
    check_slug,
    replay,
    workflow_id,
)
from twinflow.errors import (
    ConflictError,
    InvalidInput,
    NotFound,
    RuleViolation,
    StorageError,
    TwinflowError,
    WorkflowFileError,
)
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
from twinflow.views import Views

SNAPSHOT_INTERVAL = 1000

def default_actor() -> str:
    actor = os.environ.get("TWINFLOW_ACTOR", "").strip()
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


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


class Register:
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
            assert location.path is not None
            check_sqlite_file(location.path, create=create)
        # The authenticated database role, which a clerk cannot choose (None on SQLite).
        self.session_user: str | None = None
        self._workflows: dict[str, Workflow] = {}
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

    def identity(self, actor: str | None) -> tuple[str, str | None]:
        """Who records, and for whom: on PostgreSQL the authenticated role records, and a
        clerk named by --actor (who could be anyone) is kept beside it as on_behalf_of."""
        if self.session_user is None:
            return actor or default_actor(), None
        given = actor.strip() if actor else ""
        return self.session_user, given if given and given != self.session_user else None

    # ------------------------------------------------------------------ recording

    def open_case(
        self,
        slug: str,
        *,
        workflow: str,
        title: str,
        parties: Sequence[str],
        by: str,
        on: str,
        effective: str | None = None,
        body_name: str | None = None,
        reason: str | None = None,
        reference: str | None = None,
        sources: Sequence[str] = (),
        actor: str | None = None,
    ) -> dict[str, Any]:
        flow, names, decision = check_opening(
            self.library,
            slug,
            workflow=workflow,
            title=title,
            parties=parties,
            by=by,
            on=on,
            effective=effective,
            body_name=body_name,
            reason=reason,
            reference=reference,
            sources=sources,
        )
        with self.translated():
            if self._find_case(slug) is not None:
                raise RuleViolation(
                    f"case {slug!r} already exists: record decisions with `twinflow decide "
                    f"{slug} ...`, or choose another name"
                )
            for _ in contention.attempts():
                stored = self._stored_workflow(flow)
                case = Case.open(slug, title.strip(), names, flow, decision, *self.identity(actor))
                try:
                    self.events.save(
                        *([] if stored else [StoredWorkflow.register(flow, *self.identity(actor))]),
                        case,
                    )
                    break
                except IntegrityError:
                    found = self._find_case(slug)
                    if found is None:  # another writer stored this workflow version first
                        continue
                    if contention.is_ours(found, 1, case.last_hash):
                        break
                    raise ConflictError(
                        f"case {slug!r} was opened by another writer while you were recording: "
                        f"see `twinflow status {slug}`"
                    ) from None
            else:
                raise contention.gave_up(f"the workflow of case {slug!r}")
        return {
            "case": slug,
            "seq": 1,
            "workflow": flow.name,
            "version": flow.version,
            "state": flow.initial,
            "effective_on": decision["effective_on"] or on,
        }

    def decide(
        self,
        slug: str,
        trigger: str,
        *,
        by: str,
        party: str,
        on: str,
        effective: str | None = None,
        published: str | None = None,
        body_name: str | None = None,
        scope: str | None = None,
        vote: str | None = None,
        reason: str | None = None,
        reference: str | None = None,
        sources: Sequence[str] = (),
        actor: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        decision = _decision(
            trigger,
            by=by,
            party=party,
            on=on,
            effective=effective,
            published=published,
            body_name=body_name,
            scope=scope,
            vote=vote,
            reason=reason,
            reference=reference,
            sources=sources,
        )

        def attempt(case: Case, flow: Workflow) -> dict[str, Any]:
            transition = flow.transition(trigger)
            if transition is None:
                raise NotFound(
                    f"unknown decision {trigger!r} in workflow {flow.name!r} v{flow.version}: "
                    f"known: {', '.join(flow.trigger_names)}"
                )
            _check_body(flow, by, transition.by, trigger)
            _check_party(case, party)
            _check_requires(transition.requires, decision, trigger)
            items = timeline.in_force(case.entries)
            candidate = timeline.Item(
                case.version + 1, "decision", _now(), "", decision, timeline.effective_of(decision)
            )
            steps = timeline.check_path(items, candidate, flow, slug)
            step = next(s for s in steps if s.item.seq == candidate.seq)
            if not dry_run:
                case.decide(decision, *self.identity(actor))
            return {
                "case": slug,
                "seq": candidate.seq,
                "trigger": trigger,
                "effective_on": str(candidate.date),
                "state_before": step.before,
                "state_after": step.after,
                "dry_run": dry_run,
            }

        return self._record(slug, attempt, save=not dry_run, action=trigger)

    def note(
        self,
        slug: str,
        kind: str,
        *,
        on: str,
        summary: str,
        party: str | None = None,
        sources: Sequence[str] = (),
        actor: str | None = None,
    ) -> dict[str, Any]:
        note = _note(kind, on=on, summary=summary, party=party, sources=sources)
        date = parse_date(note["on"], "--on")

        def attempt(case: Case, flow: Workflow) -> dict[str, Any]:
            if kind not in flow.note_names:
                raise NotFound(
                    f"unknown note kind {kind!r} in workflow {flow.name!r}: "
                    f"known: {', '.join(flow.note_names)}"
                )
            if party is not None:
                _check_party(case, party)
            opened = timeline.in_force(case.entries)[0]
            if date.latest < opened.date.earliest:
                raise RuleViolation(
                    f"cannot note {kind!r} on {date} for case {slug!r}: the case "
                    f"was opened {opened.date}; check the date"
                )
            case.note(note, *self.identity(actor))
            return {"case": slug, "seq": case.version, "kind": kind, "on": date.text}

        return self._record(slug, attempt, save=True)

    def correct(
        self,
        slug: str,
        seq: int,
        *,
        why: str,
        on: str | None = None,
        effective: str | None = None,
        published: str | None = None,
        by: str | None = None,
        party: str | None = None,
        body_name: str | None = None,
        scope: str | None = None,
        vote: str | None = None,
        reference: str | None = None,
        reason: str | None = None,
        sources: Sequence[str] = (),
        kind: str | None = None,
        summary: str | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Record a correction of event `seq`, carrying only the fields that change."""
        from twinflow import corrections

        given = {
            key: value
            for key, value in dict(
                on=on,
                effective=effective,
                published=published,
                by=by,
                party=party,
                body_name=body_name,
                scope=scope,
                vote=vote,
                reference=reference,
                reason=reason,
                sources=list(sources) or None,
                kind=kind,
                summary=summary,
            ).items()
            if value is not None
        }
        reason_given = corrections.check_why(why)

        def attempt(case: Case, flow: Workflow) -> dict[str, Any]:
            corrections.target(case, seq, "correct")
            items = timeline.in_force(case.entries)
            item = next(i for i in items if i.seq == seq)
            changes = corrections.changes(case, flow, item, given)
            before = timeline.path(items, flow)
            after = timeline.check_change(items, seq, changes, flow, slug)
            case.correct(seq, reason_given, changes, *self.identity(actor))
            return {
                "case": slug,
                "seq": case.version,
                "target": seq,
                "why": reason_given,
                "changes": {k: {"from": item.values.get(k), "to": v} for k, v in changes.items()},
                "state_before": before[-1].after,
                "state_after": after[-1].after,
            }

        return self._record(slug, attempt, save=True)

    def retract(
        self, slug: str, seq: int, *, why: str, actor: str | None = None
    ) -> dict[str, Any]:
        """Record that event `seq` should not have been recorded; it stays in the log."""
        from twinflow import corrections

        reason_given = corrections.check_why(why)

        def attempt(case: Case, flow: Workflow) -> dict[str, Any]:
            entry = corrections.target(case, seq, "retract")
            items = timeline.in_force(case.entries)
            before = timeline.path(items, flow)
            after = timeline.check_change(items, seq, None, flow, slug)
            case.retract(seq, reason_given, *self.identity(actor))
            data = entry.data.get("decision") or entry.data.get("note") or {}
            return {
                "case": slug,
                "seq": case.version,
                "target": seq,
                "what": data.get("trigger") or data.get("kind"),
                "why": reason_given,
                "state_before": before[-1].after,
                "state_after": after[-1].after,
            }

        return self._record(slug, attempt, save=True)

    def _record(
        self,
        slug: str,
        attempt: Callable[[Case, Workflow], dict[str, Any]],
        *,
        save: bool,
        action: str = "",
    ) -> dict[str, Any]:
        """Get, check, save; on a conflict with another writer, reload and check again."""
        seen: int | None = None  # the case's version when we first read it
        sent: tuple[int, str, dict[str, Any]] | None = None  # a save that may have gone through
        for tries in contention.attempts():
            with self.translated():
                case = self.get_case(slug)
                if sent and contention.is_ours(case, sent[0], sent[1]):
                    return sent[2]
                seen = case.version if seen is None else seen
                flow = self.workflow_of(case, check_file=True)
                try:
                    result = attempt(case, flow)
                except RuleViolation as violation:
                    if tries:
                        raise contention.changed(
                            slug, case, flow, seen, action, violation
                        ) from None
                    raise
                if not save:
                    return result
                sent = (case.version, case.last_hash, result)
                try:
                    self.events.save(case)
                except IntegrityError:
                    continue
                return result
        raise contention.gave_up(f"case {slug!r}")

    # ------------------------------------------------------------------ reading

    def status(
        self, slug: str, *, as_of: str | None = None, known_at: str | None = None, lang: str = "en"
    ) -> dict[str, Any]:
        date = parse_date(as_of, "--as-of") if as_of else today()
        known = parse_timestamp(known_at, "--known-at") if known_at else None
        # Today's register answers from the read models, in time that does not grow with the
        # case's history; the register as known at a past moment is replayed.
        viewed = self._viewed_status(slug, date) if known is None else None
        opened: PartialDate | None
        if viewed is not None:
            title, parties, flow, found, opened = viewed
            recorded_at = None
        else:
            with self.translated():
                case = self.get_case(slug)
                flow = self.workflow_of(case, known_at=known)
            items = timeline.in_force(case.entries, known)
            found = timeline.status_on(timeline.path(items, flow), date)
            title, parties = case.title, list(case.parties)
            opened = items[0].date if items else None
            recorded_at = case.entries[0].recorded_at
        result: dict[str, Any] = {
            "case": slug,
            "title": title,
            "workflow": flow.name,
            "version": flow.version,
            "state": found.state,
            "certain": found.certain,
            "as_of": date.text,
            "known_at": (known or _now()).isoformat(timespec="seconds"),
            "since": str(found.since.item.date) if found.since else None,
            "since_seq": found.since.item.seq if found.since else None,
            "parties": parties,
        }
        if opened is None and recorded_at is not None:
            result["note"] = (
                f"the register held nothing on {slug!r} at {result['known_at']}: "
                f"it was recorded at {recorded_at.isoformat(timespec='seconds')}"
            )
        elif found.state is None and found.certain:
            result["note"] = f"the case was opened {opened}, after {date}"
        if not found.certain:
            result["possible"] = list(found.possible)
            result["note"] = (
                "; ".join(
                    f"the {step.item.date} {flow.trigger_noun(step.item.trigger, lang)} "
                    f"(#{step.item.seq}) may not yet have taken effect"
                    for step in found.pending
                )
                or f"imprecise dates around {date} leave the state open"
            )
        return result

    def _viewed_status(
        self, slug: str, date: PartialDate
    ) -> tuple[str, list[str], Workflow, timeline.Status, PartialDate] | None:
        """The status from the read models, caught up first; None where they lack the case."""
        try:
            self.views.catch_up()
        except StorageError as error:
            if not str(error).startswith("the register is busy"):
                raise
            return None  # a writer holds the lock: replay the case rather than fail a reader
        with self.translated():
            viewed = self.views.status_on(slug, date)
            if viewed is None:
                return None
            case, found, opened = viewed
            flow = self.stored_workflow(case["workflow"], case["version"])
        return case["title"], case["parties"], flow, found, opened

    def history(
        self,
        slug: str,
        *,
        as_of: str | None = None,
        known_at: str | None = None,
    ) -> list[dict[str, Any]]:
        date = parse_date(as_of, "--as-of") if as_of else None
        known = parse_timestamp(known_at, "--known-at") if known_at else None
        with self.translated():
            case = self.get_case(slug)
            flow = self.workflow_of(case, known_at=known)
        items = timeline.in_force(case.entries, known)
        steps = {s.item.seq: s for s in timeline.path(items, flow)}
        # Retracted events stay in the history, marked, off the path through the workflow.
        gone = timeline.retracted_items(case.entries, known)
        retracted = {i.seq for i in gone}
        rows, state = [], None
        for item in sorted(
            [*items, *gone],
            key=lambda i: (i.trigger != timeline.OPEN or i.kind != "decision", i.date.start, i.seq),
        ):
            if date is not None and item.date.earliest > date.latest:
                continue
            if item.seq in retracted:
                rows.append(_history_row(case, item, None, None))
                continue
            step = steps.get(item.seq)
            before, state = (step.before, step.after) if step else (state, state)
            rows.append(_history_row(case, item, before, state))
        return rows

    def list_cases(
        self,
        *,
        workflow: str | None = None,
        state: str | None = None,
        party: str | None = None,
        as_of: str | None = None,
    ) -> list[dict[str, Any]]:
        date = parse_date(as_of, "--as-of") if as_of else today()
        self.views.catch_up()
        return self.views.cases(workflow=workflow, state=state, party=party, as_of=date)

    def audit(
        self,
        *,
        actor: str | None = None,
        case: str | None = None,
        since: str | None = None,
        until: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[dict[str, Any]]:
        start = parse_timestamp(since, "--since") if since else None
        if start is not None and len(since or "") == 10:  # a plain date: from its first moment
            start = dt.datetime.combine(start.date(), dt.time.min, tzinfo=dt.UTC)
        end = parse_timestamp(until, "--until") if until else None
        if start is not None and end is not None and start > end:
            raise InvalidInput(
                f"--since {since} is after --until {until}: give the earlier moment as --since"
            )
        if case is not None:
            with self.translated():
                self.get_case(case)
        self.views.catch_up(progress)
        return self.views.audit(actor=actor, case=case, since=start, until=end)

    def verify(
        self,
        *,
        case: str | None = None,
        digest: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Recompute every hash chain (or one case's) and, given one, a published digest."""
        from twinflow import verify

        expected = verify.parse_digest(digest) if digest is not None else None
        if case is not None:
            check_slug(case)
        with self.translated():
            report = verify.verify(
                self.events.recorder,
                self.events.mapper,
                case=case,
                expected=expected,
                names=self.views.known_cases(),
                progress=progress,
            )
        if report.digest is not None and not report.digest["holds"] and case is None:
            seen = [(r["position"], r["case"], r["seq"]) for r in self.views.audit()]
            hint = verify.locate(self.events.recorder, seen)
            if hint:
                report.digest["problem"] += f"; {hint}"
        holds = not report.broken and (report.digest is None or report.digest["holds"])
        return {
            "holds": holds,
            "events": report.events,
            "cases": report.count("case"),
            "workflows": report.count("workflow"),
            "broken": [
                {"case": b.name, "seq": b.seq, "position": b.position, "problems": b.problems}
                for b in report.broken
            ],
            "lines": [str(b) for b in report.broken],
            "digest": report.digest,
        }

    def digest(self, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """A running hash over the whole log in global order, to be published."""
        from twinflow import verify

        with self.translated():
            position, value = verify.digest(self.events.recorder, progress)
        return {"position": position, "hash": value, "digest": f"{position}:{value}"}

    def size(self) -> int:
        """About how many events the log holds (its last position), for progress bars."""
        with self.translated():
            return int(self.events.recorder.max_notification_id() or 0)

    # ------------------------------------------------------------------ workflow versions

    def workflow_version(self, name: str, version: int | None = None) -> Workflow:
        """A version of a workflow (the file's, if None): from the file where it holds that
        version, else the register's stored copy. A file changed without a bump is refused."""
        try:
            current: Workflow | None = self.library.get(name)
        except NotFound:
            current = None
        with self.translated():
            if current is not None and version in (None, current.version):
                self._stored_workflow(current)
                return current
            stored = self._find_stored(name, version) if version is not None else None
            if stored is not None:
                return definitions.from_document(stored.document)
            held = self.stored_versions(name)
        if current is None and not held:
            self.library.get(name)  # raises the library's NotFound, naming the known ones
        places = []
        if current is not None:
            places.append(f"the file {self.library.files()[name]} holds v{current.version}")
        if held:
            places.append(f"the register holds {', '.join(f'v{v}' for v in held)}")
        raise NotFound(f"workflow {name!r} has no version {version}: {'; '.join(places)}")

    def stored_versions(self, name: str) -> list[int]:
        """The versions of a workflow stored in the register (each first used by a case)."""
        versions, start = set(), None
        with self.translated():
            while True:
                batch = self.events.recorder.select_notifications(
                    start, 1000, topics=[StoredWorkflow.Registered.TOPIC], inclusive_of_start=False
                )
                for notification in batch:
                    event = self.events.mapper.to_domain_event(notification)
                    if isinstance(event, StoredWorkflow.Registered) and event.name == name:
                        versions.add(event.version)
                if len(batch) < 1000:
                    return sorted(versions)
                start = batch[-1].id

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

    def workflow_at(self, slug: str, known_at: str | None = None) -> Workflow:
        """The version a case was judged by at `known_at` (now, if None)."""
        known = parse_timestamp(known_at, "--known-at") if known_at else None
        with self.translated():
            return self.workflow_of(self.get_case(slug), known_at=known)

    def migrate(
        self,
        case: str | None = None,
        *,
        workflow: str | None = None,
        to: int,
        reason: str | None = None,
        actor: str | None = None,
        dry_run: bool = False,
    ) -> list[dict[str, Any]]:
        """Move one case, or every case of `workflow`, to version `to` of its workflow: each
        only where its whole timeline is a legal path there, and all of them or none."""
        from twinflow import migration

        if not dry_run and not (reason and reason.strip()):
            raise InvalidInput(
                "a migration needs a reason: give --reason, e.g. 'v2 adds the pause decision'"
            )
        for _ in contention.attempts():
            with self.translated():
                if case is not None:
                    cases = [self.get_case(case)]
                else:
                    assert workflow is not None
                    self.views.catch_up()
                    slugs = self.views.cases(workflow=workflow, as_of=today())
                    cases = [self.get_case(row["case"]) for row in slugs]
                name = cases[0].workflow if case is not None else str(workflow)
                target = self.workflow_version(name, to)
                reports = [
                    migration.judge(
                        c.slug,
                        timeline.in_force(c.entries),
                        self.workflow_of(c),
                        target,
                    )
                    for c in cases
                ]
                failed = [r for r in reports if r.outcome == migration.CANNOT]
                if case is not None and reports[0].outcome == migration.ALREADY:
                    raise RuleViolation(f"case {case!r} is already on {name} v{to}: nothing to do")
                if dry_run:
                    return [r.as_dict() for r in reports]
                if failed:
                    raise RuleViolation(
                        migration.refusal(
                            [r.as_dict() for r in reports], name, to, every=case is None
                        )
                    )
                moving = [
                    c
                    for c, r in zip(cases, reports, strict=True)
                    if r.outcome == migration.MIGRATES
                ]
                who = self.identity(actor)
                for c in moving:
                    c.migrate(target, (reason or "").strip(), *who)
                stored = self._stored_workflow(target)
                try:
                    if moving:  # the target version is stored in the same save as the cases
                        self.events.save(
                            *([] if stored else [StoredWorkflow.register(target, *who)]), *moving
                        )
                except IntegrityError:
                    continue
                seqs = {c.slug: c.version for c in moving}
                return [
                    {**r.as_dict(), "outcome": migration.MIGRATED, "seq": seqs[r.case]}
                    if r.case in seqs
                    else r.as_dict()
                    for r in reports
                ]
        raise contention.gave_up(f"case {case!r}" if case else f"the {workflow} cases")

    # ------------------------------------------------------------------ helpers

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
        flow = self._workflows.get(digest)
        if flow is None:
            stored: StoredWorkflow = self.events.repository.get(
                workflow_id(case.workflow, version)
            )
            flow = definitions.from_document(stored.document)
            self._workflows[digest] = flow
        if check_file:
            try:
                current = self.library.get(case.workflow)
            except NotFound:
                return flow
            if current.version == flow.version and current.digest != flow.digest:
                raise _changed_without_bump(current, self.library)
        return flow

    @contextmanager
    def translated(self) -> Iterator[None]:
        """Turn the store's errors into one clear line."""
        try:
            yield
        except TwinflowError:
            raise
        except IntegrityError:
            raise
        except PersistenceError as exc:
            raise StorageError(_storage_message(exc, self.location)) from None


def check_opening(
    library: Library,
    slug: str,
    *,
    workflow: str,
    title: str,
    parties: Sequence[str],
    by: str,
    on: str,
    effective: str | None = None,
    body_name: str | None = None,
    reason: str | None = None,
    reference: str | None = None,
    sources: Sequence[str] = (),
) -> tuple[Workflow, list[str], dict[str, Any]]:
    """Check an opening without touching the store (so a refused first `open` creates no
    register): the workflow, the party names and the founding decision."""
    check_slug(slug)
    if not title or not title.strip():
        raise InvalidInput("the title is empty: give --title, e.g. 'Twinning Coevorden–Brest'")
    names = [p.strip() for p in parties]
    if not names or not all(names):
        raise InvalidInput("a case needs at least one party: give --party NAME, once per party")
    if len(set(names)) != len(names):
        raise InvalidInput(f"a party is named twice in {', '.join(names)}: name each once")
    flow = library.get(workflow)
    _check_body(flow, by, flow.open_by, "open")
    decision = _decision(
        "open",
        by=by,
        party=None,
        on=on,
        effective=effective,
        body_name=body_name,
        reason=reason,
        reference=reference,
        sources=sources,
    )
    _check_requires(flow.open_requires, decision, "open")
    return flow, names, decision


def _storage_message(exc: Exception, location: Location) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "locked" in text or "busy" in text or "lock timeout" in text:
        return (
            f"the register is busy: another twinflow is writing ({location.describe()}); try again"
        )
    if "append-only" in text:
        return text.removeprefix("twinflow: ")
    if location.kind == "postgres":
        from twinflow import postgres

        return postgres.explain(str(exc), location)
    if "unable to open database file" in text:  # SQLite could not create or open the file
        return (
            f"cannot open or create the register {location.describe()} ({text}): check that "
            "its folder is writable, or choose another --db"
        )
    return (
        f"cannot use the register {location.describe()}: {text}; check the file, or restore "
        "it from a backup"
    )


def _changed_without_bump(flow: Workflow, library: Library) -> WorkflowFileError:
    path = library.files().get(flow.name, flow.name)
    return WorkflowFileError(
        f"workflow file {path} changed since version {flow.version} was first used by a case, "
        f"but its version is still {flow.version}: bump `version` to {flow.version + 1} "
        "(cases stay on the version they were opened with), or undo the change"
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _sources(sources: Sequence[str]) -> list[str]:
    return [s.strip() for s in sources if s and s.strip()]


def _decision(
    trigger: str,
    *,
    by: str,
    party: str | None,
    on: str,
    effective: str | None,
    published: str | None = None,
    body_name: str | None = None,
    scope: str | None = None,
    vote: str | None = None,
    reason: str | None = None,
    reference: str | None = None,
    sources: Sequence[str] = (),
) -> dict[str, Any]:
    decided = parse_date(on, "--on")
    effective_date: PartialDate | None = parse_date(effective, "--effective") if effective else None
    published_date = parse_date(published, "--published") if published else None
    return {
        "trigger": trigger,
        "party": party,
        "body": by,
        "body_name": body_name or None,
        "decided_on": decided.text,
        "effective_on": effective_date.text if effective_date else None,
        "published_on": published_date.text if published_date else None,
        "scope": scope or None,
        "vote": vote or None,
        "reference": reference or None,
        "reason": reason or None,
        "sources": _sources(sources),
    }


def _note(
    kind: str, *, on: str, summary: str, party: str | None, sources: Sequence[str]
) -> dict[str, Any]:
    date = parse_date(on, "--on")
    if not summary or not summary.strip():
        raise InvalidInput("the summary is empty: say in --summary what happened")
    return {
        "kind": kind,
        "on": date.text,
        "summary": summary.strip(),
        "party": party,
        "sources": _sources(sources),
    }


def _check_body(flow: Workflow, by: str, allowed: Sequence[str], verb: str) -> None:
    if by not in flow.body_names:
        raise NotFound(
            f"unknown body kind {by!r} in workflow {flow.name!r} v{flow.version}: known: "
            f"{', '.join(flow.body_names)} (to {verb}: {', '.join(allowed) or 'none'})"
        )
    if by not in allowed:
        # `by` may be empty: a decision a workflow keeps but no body may take (lint warns)
        raise RuleViolation(
            f"body kind {by!r} may not {verb} a {flow.name!r} case: allowed: "
            f"{', '.join(allowed) or 'none'}"
        )


def _check_party(case: Case, party: str) -> None:
    if party not in case.parties:
        raise RuleViolation(
            f"{party!r} is not a party to case {case.slug!r}: parties: {', '.join(case.parties)}"
        )


def _check_requires(required: Sequence[str], decision: dict[str, Any], trigger: str) -> None:
    missing = [name for name in required if not decision.get(name)]
    if missing:
        options = ", ".join(
            "--"
            + {
                "reference": "ref",
                "published_on": "published",
                "body_name": "body-name",
                "sources": "source",
            }.get(m, m)
            for m in missing
        )
        raise RuleViolation(f"a {trigger!r} decision requires {', '.join(missing)}: give {options}")


def _history_row(
    case: Case, item: timeline.Item, before: str | None, after: str | None
) -> dict[str, Any]:
    v = item.values
    decision = item.kind == "decision"
    return {
        "seq": item.seq,
        "kind": ("opened" if item.trigger == timeline.OPEN else "decided") if decision else "noted",
        "trigger": v.get("trigger") if decision else v.get("kind"),
        "effective_on": str(item.date) if decision else v.get("on"),
        "decided_on": v.get("decided_on") if decision else v.get("on"),
        "published_on": v.get("published_on"),
        "party": v.get("party")
        or (" + ".join(case.parties) if item.trigger == timeline.OPEN else None),
        "body": v.get("body"),
        "body_name": v.get("body_name"),
        "scope": v.get("scope"),
        "vote": v.get("vote"),
        "reference": v.get("reference"),
        "reason": v.get("reason"),
        "summary": v.get("summary"),
        "sources": list(v.get("sources") or []),
        "recorded_at": item.recorded_at.isoformat(),
        "actor": item.actor,
        "on_behalf_of": case.entries[item.seq - 1].data.get("on_behalf_of"),
        "state_before": before,
        "state_after": after,
        **_amendments(case, item),
    }


def _amendments(case: Case, item: timeline.Item) -> dict[str, Any]:
    """The corrections and retractions of an item, each with the fields it changed (from,
    to), the item's original values of every field since corrected, and a one-line summary."""
    data = case.entries[item.seq - 1].data
    values = dict(data.get("decision") or data.get("note") or {})
    original: dict[str, Any] = {}
    changes = []
    for c in item.changes:
        fields = {k: {"from": values.get(k), "to": v} for k, v in c.changes.items()}
        for name, value in c.changes.items():
            original.setdefault(name, values.get(name))
            values[name] = value
        changes.append(
            {
                "seq": c.seq,
                "kind": c.kind,
                "why": c.why,
                "actor": c.actor,
                "on_behalf_of": case.entries[c.seq - 1].data.get("on_behalf_of"),
                "recorded_at": c.recorded_at.isoformat(),
                "fields": fields,
            }
        )
    retracted = any(c.kind == "retracted" for c in item.changes)
    return {
        "retracted": retracted,
        "original": original,
        "changes": changes,
        "amended": " | ".join(amendment_text(c) for c in changes),
    }


def amendment_text(change: Mapping[str, Any]) -> str:
    fields = ", ".join(
        f"{name} {shown_value(v['from'])} -> {shown_value(v['to'])}"
        for name, v in change["fields"].items()
    )
    who = change["actor"]
    if change.get("on_behalf_of"):
        who += f" on behalf of {change['on_behalf_of']}"
    return (
        f"{change['kind']} by #{change['seq']} ({who}, "
        f"{change['recorded_at'][:19]}): {fields + '; ' if fields else ''}why: {change['why']}"
    )


def shown_value(value: Any) -> str:
    if value is None or value == []:
        return "(none)"
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)
