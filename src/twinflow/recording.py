"""The use cases that record: open a case, decide, note, correct and retract, each as
"get, check, save", checked again against what another writer saved meanwhile."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import IntegrityError

from twinflow import contention, timeline
from twinflow.casestore import CaseStore
from twinflow.dates import now, parse_date
from twinflow.decisions import (
    check_body,
    check_opening,
    check_party,
    check_requires,
    decision_fields,
    note_fields,
)
from twinflow.definitions import Workflow
from twinflow.domain import Case, StoredWorkflow
from twinflow.errors import ConflictError, NotFound, RuleViolation


class Recording(CaseStore):
    """Recording decisions and notes about cases."""

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
        decision = decision_fields(
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
            check_body(flow, by, transition.by, trigger)
            check_party(case, party)
            check_requires(transition.requires, decision, trigger)
            items = timeline.in_force(case.entries)
            candidate = timeline.Item(
                case.version + 1, "decision", now(), "", decision, timeline.effective_of(decision)
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
        note = note_fields(kind, on=on, summary=summary, party=party, sources=sources)
        date = parse_date(note["on"], "--on")

        def attempt(case: Case, flow: Workflow) -> dict[str, Any]:
            if kind not in flow.note_names:
                raise NotFound(
                    f"unknown note kind {kind!r} in workflow {flow.name!r}: "
                    f"known: {', '.join(flow.note_names)}"
                )
            if party is not None:
                check_party(case, party)
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

    def retract(self, slug: str, seq: int, *, why: str, actor: str | None = None) -> dict[str, Any]:
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
