"""The service layer: one method per use case, primitives in and out ("get, check, save").
The only module that touches the eventsourcing Application."""

from __future__ import annotations

import datetime as dt
import getpass
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, PersistenceError

from twinflow import definitions, timeline
from twinflow.dates import PartialDate, parse_date, parse_timestamp, today
from twinflow.definitions import Library, Workflow
from twinflow.domain import Case, StoredWorkflow, case_id, check_slug, workflow_id
from twinflow.errors import (
    ConflictError,
    InvalidInput,
    NotFound,
    RuleViolation,
    StorageError,
    TwinflowError,
    WorkflowFileError,
)
from twinflow.storage import Location, check_sqlite_file, install, locate
from twinflow.views import Views

RETRIES = 5


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


class Register:
    """A register of cases and the decisions about them."""

    def __init__(
        self, location: Location, library: Library | None = None, *, create: bool = True
    ) -> None:
        self.location = location
        self.library = library or Library.from_env()
        if location.kind == "sqlite":
            assert location.path is not None
            check_sqlite_file(location.path, create=create)
        with self.translated():
            self.events = Events(env=location.env())
            if create:
                datastore = self.events.recorder.datastore  # type: ignore[attr-defined]
                with datastore.transaction(commit=True) as cursor:
                    install(cursor, location.kind, self.events.recorder.events_table_name)  # type: ignore[attr-defined]
        self._workflows: dict[str, Workflow] = {}
        self.views = Views(self)
        if create:
            self.views.create()

    @classmethod
    def at(
        cls, db: str | None = None, workflows: str | None = None, *, create: bool = True
    ) -> Register:
        return cls(locate(db), Library.from_env(workflows), create=create)

    def close(self) -> None:
        self.events.close()

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
        check_slug(slug)
        if not title or not title.strip():
            raise InvalidInput("the title is empty: give --title, e.g. 'Twinning Coevorden–Brest'")
        names = [p.strip() for p in parties]
        if not names or not all(names):
            raise InvalidInput("a case needs at least one party: give --party NAME, once per party")
        if len(set(names)) != len(names):
            raise InvalidInput(f"a party is named twice in {', '.join(names)}: name each once")
        flow = self.library.get(workflow)
        if by not in flow.open_by:
            raise RuleViolation(
                f"body kind {by!r} may not open a {flow.name!r} case: allowed: "
                f"{', '.join(flow.open_by)}"
            )
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
        with self.translated():
            if self._find_case(slug) is not None:
                raise RuleViolation(
                    f"case {slug!r} already exists: record decisions with `twinflow decide "
                    f"{slug} ...`, or choose another name"
                )
            stored = self._stored_workflow(flow)
            case = Case.open(slug, title.strip(), names, flow, decision, actor or default_actor())
            try:
                self.events.save(
                    *([] if stored else [StoredWorkflow.register(flow, case.entries[0].actor)]),
                    case,
                )
            except IntegrityError:
                raise ConflictError(
                    f"case {slug!r} was opened by another writer while you were recording: "
                    f"see `twinflow status {slug}`"
                ) from None
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
            if by not in transition.by:
                raise RuleViolation(
                    f"body kind {by!r} may not {trigger} a {flow.name!r} case: allowed: "
                    f"{', '.join(transition.by)}"
                )
            _check_party(case, party)
            _check_requires(transition.requires, decision, trigger)
            items = timeline.in_force(case.entries)
            candidate = timeline.Item(
                case.version + 1, "decision", _now(), "", decision, timeline.effective_of(decision)
            )
            steps = timeline.check_path(items, candidate, flow, slug)
            step = next(s for s in steps if s.item.seq == candidate.seq)
            if not dry_run:
                case.decide(decision, actor or default_actor())
            return {
                "case": slug,
                "seq": candidate.seq,
                "trigger": trigger,
                "effective_on": str(candidate.date),
                "state_before": step.before,
                "state_after": step.after,
                "dry_run": dry_run,
            }

        return self._record(slug, attempt, save=not dry_run)

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
        date = parse_date(on, "--on")
        if not summary or not summary.strip():
            raise InvalidInput("the summary is empty: say in --summary what happened")
        note = {
            "kind": kind,
            "on": date.text,
            "summary": summary.strip(),
            "party": party,
            "sources": _sources(sources),
        }

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
            case.note(note, actor or default_actor())
            return {"case": slug, "seq": case.version, "kind": kind, "on": date.text}

        return self._record(slug, attempt, save=True)

    def _record(
        self, slug: str, attempt: Callable[[Case, Workflow], dict[str, Any]], *, save: bool
    ) -> dict[str, Any]:
        """Get, check, save; on a conflict with another writer, reload and check again."""
        for tries in range(RETRIES):
            with self.translated():
                case = self.get_case(slug)
                flow = self.workflow_of(case, check_file=True)
                try:
                    result = attempt(case, flow)
                except RuleViolation as violation:
                    if tries:
                        raise ConflictError(
                            f"case {slug!r} changed while you were recording: {violation}"
                        ) from None
                    raise
                if not save:
                    return result
                try:
                    self.events.save(case)
                except IntegrityError:
                    continue
                return result
        raise ConflictError(
            f"case {slug!r} kept changing while you were recording ({RETRIES} tries): try again"
        )

    # ------------------------------------------------------------------ reading

    def status(
        self, slug: str, *, as_of: str | None = None, known_at: str | None = None, lang: str = "en"
    ) -> dict[str, Any]:
        date = parse_date(as_of, "--as-of") if as_of else today()
        known = parse_timestamp(known_at, "--known-at") if known_at else None
        with self.translated():
            case = self.get_case(slug)
            flow = self.workflow_of(case)
        items = timeline.in_force(case.entries, known)
        steps = timeline.path(items, flow)
        found = timeline.status_on(steps, date)
        result: dict[str, Any] = {
            "case": slug,
            "title": case.title,
            "workflow": flow.name,
            "version": flow.version,
            "state": found.state,
            "certain": found.certain,
            "as_of": date.text,
            "known_at": (known or _now()).isoformat(timespec="seconds"),
            "since": str(found.since.item.date) if found.since else None,
            "since_seq": found.since.item.seq if found.since else None,
            "parties": list(case.parties),
        }
        if not items:
            result["note"] = (
                f"the register held nothing on {slug!r} at {result['known_at']}: "
                f"it was recorded at {case.entries[0].recorded_at.isoformat(timespec='seconds')}"
            )
        elif found.state is None and found.certain:
            result["note"] = f"the case was opened {items[0].date}, after {date}"
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
            flow = self.workflow_of(case)
        items = timeline.in_force(case.entries, known)
        steps = {s.item.seq: s for s in timeline.path(items, flow)}
        rows, state = [], None
        for item in sorted(
            items,
            key=lambda i: (i.trigger != timeline.OPEN or i.kind != "decision", i.date.start, i.seq),
        ):
            if date is not None and item.date.earliest > date.latest:
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
    ) -> list[dict[str, Any]]:
        start = parse_timestamp(since, "--since") if since else None
        end = parse_timestamp(until, "--until") if until else None
        self.views.catch_up()
        return self.views.audit(actor=actor, case=case, since=start, until=end)

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
            case: Case = self.events.repository.get(case_id(slug))
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

    def workflow_of(self, case: Case, *, check_file: bool = False) -> Workflow:
        """The stored definition a case is judged by (never today's file)."""
        flow = self._workflows.get(case.workflow_digest)
        if flow is None:
            stored: StoredWorkflow = self.events.repository.get(
                workflow_id(case.workflow, case.workflow_version)
            )
            flow = definitions.from_document(stored.document)
            self._workflows[case.workflow_digest] = flow
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


def _storage_message(exc: Exception, location: Location) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "locked" in text or "busy" in text:
        return (
            f"the register is busy: another twinflow is writing ({location.describe()}); try again"
        )
    if "append-only" in text:
        return text.removeprefix("twinflow: ")
    if location.kind == "postgres":
        return (
            f"cannot use the PostgreSQL register {location.describe()}: {text}; check that the "
            "server runs, the database exists and the user may connect"
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
        "state_before": before,
        "state_after": after,
        "changes": [
            {
                "seq": c.seq,
                "kind": c.kind,
                "why": c.why,
                "actor": c.actor,
                "recorded_at": c.recorded_at.isoformat(),
            }
            for c in item.changes
        ],
    }
