"""The use cases that only read: a case's status and history, the list of cases, the audit
trail, and the checks of the log (verify, digest)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from twinflow import timeline
from twinflow.casestore import CaseStore
from twinflow.dates import PartialDate, now, parse_date, parse_timestamp, today
from twinflow.definitions import Workflow
from twinflow.domain import check_slug
from twinflow.errors import InvalidInput, StorageError
from twinflow.history import history_rows


class Queries(CaseStore):
    """Reading a register: every method leaves it as it was."""

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
        return timeline.status_answer(
            slug, title, parties, flow, found, date, opened, known or now(), lang, recorded_at
        )

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
        return history_rows(case, flow, date, known)

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
                names=verify.KnownCases(self.views.known_cases),
                progress=progress,
                location=self.location,
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
