"""The use cases of workflow versions: which versions a register holds, the version a case
was judged by, and moving cases to another version."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import IntegrityError

from twinflow import contention, definitions, timeline
from twinflow.casestore import CaseStore
from twinflow.dates import parse_timestamp, today
from twinflow.definitions import Workflow
from twinflow.domain import StoredWorkflow
from twinflow.errors import InvalidInput, NotFound, RuleViolation


class Versions(CaseStore):
    """The workflow versions of a register and the migration of cases between them."""

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
