"""The case checks of an import: each case's rows, in valid-time order with its opening first,
judged by its workflow and, with what the register already holds, as one timeline that must be
a legal path; then, where nothing at all is wrong, its events built as the domain would record
them (eventbytes.py) and spilled for the write, with the read models' rows of the cases it
opens. The cases of a large file are shared among processes, by runs (`check`)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from twinflow import bulk, fanout, projection, timeline
from twinflow.definitions import Library, Transition, Workflow
from twinflow.domain import Case, StoredWorkflow, case_id
from twinflow.errors import NotFound, TwinflowError
from twinflow.eventbytes import Builder, Chain
from twinflow.exchange import Problem, Progress, Summary, catch_up_views
from twinflow.rowcheck import date_of
from twinflow.spill import BATCH, Spill, Spilled
from twinflow.storage import MOST_ATTACHED

if TYPE_CHECKING:
    from twinflow.application import Register

CHECKING = "checking"
# What writing another process's checked row into the register costs (its events and read
# models' rows copied from its spill file), beside checking and building one: a quarter to
# a third (bench/RESULTS.md, fixes 34 and 36). The command writes every run: it checks less.
WRITING = 0.3
PIECES = 8  # the most runs each other process checks its share in (`shares`)
LOOKS = 50  # a run looks whether another found a problem every LOOKS cases (a file's stat)
COLUMN_OF = {"sources": "source"}  # decision fields whose import column has another name


class Rules:
    """What the row checks look up in one workflow version, found once instead of once a
    row: each trigger's transition (the first of that trigger, as Workflow.transition finds
    it) and the names of its body and note kinds."""

    def __init__(self, flow: Workflow) -> None:
        self.transitions: dict[str, Transition] = {}
        for transition in flow.transitions:
            self.transitions.setdefault(transition.trigger, transition)
        self.bodies = frozenset(flow.body_names)
        self.notes = frozenset(flow.note_names)


class Part(NamedTuple):
    """A run of a file's cases for one process to check and build (check_part)."""

    source: str  # the spill file holding the rows (spill.Spill.share)
    low: int  # the cases indexed from low up to high
    high: int
    out: str  # the spill file to build into
    actor: str
    on_behalf_of: str | None
    build: bool  # build the events where nothing is wrong (not in a dry run)
    rows: bool  # make the read models' rows too
    folders: tuple[str, ...]  # the user's workflow folders (definitions.Library)
    flag: str  # a file any run makes at its first problem: the others then stop building
    # The workflows the file's openings name, as the command loaded and checked them: every
    # run uses these (the same versions; no process checks a file again)
    flows: tuple[Workflow, ...]


class Checked(NamedTuple):
    """What checking a run of cases found: its problems, its counts (Summary's COUNTED),
    the workflow versions its cases are the first to use (name, digest), and whether its
    spill holds the read models' rows of all its cases."""

    problems: list[Problem]
    counts: dict[str, int]
    needed: list[tuple[str, str]]
    views: bool


COUNTED = ("cases_opened", "cases_extended", "decisions", "notes", "events")


def check(
    register: Register,
    spill: Spill,
    problems: list[Problem],
    summary: Summary,
    *,
    actor: str | None,
    build: bool,
    folder: Path,
    progress: Progress | None = None,
    started: list[fanout.Started] | None = None,
    writer: bulk.Writing | None = None,
) -> tuple[list[Path], bool]:
    """Check every case of the spilled rows and, where nothing at all is wrong, build their
    events (and on SQLite the read models' rows of the new cases). A file of many rows is
    shared among processes (fanout.py) by runs of consecutive cases, each built into a
    spill file of its own, written in turn, so the events keep the order one process gives
    them. Returns the spill files built into after `spill` (which holds the workflow
    versions to store first), and whether all of them hold the read models' rows. The
    processes `started` ahead (fanout.ahead) are given runs first (`shares`). With a
    `writer`, this process builds its own run straight into the register and copies each
    other run in as soon as it is done, while the others still check theirs."""
    actor, on_behalf_of = register.identity(actor)
    build = build and not problems  # a file with a bad row is only checked
    rows = (
        build
        and register.location.kind == "sqlite"
        and not _holds_any(register, spill.names)
        and _views_current(register, progress)
    )
    folders = tuple(str(d) for d in register.library.user_dirs)
    plan = shares(processes(summary.rows))
    cuts = spill.cuts([share for runs in plan for share in runs])
    # The workflow versions the file's openings name that the register does not hold yet,
    # stored before the cases' events and stamped before them too: in a file without a
    # problem, exactly those its cases are the first to use (`needed`, checked below)
    flows = _loadable(register, spill.opened_workflows())
    early = _workflow_events(register, flows, actor, on_behalf_of)
    if build:
        mapper = register.events.mapper
        for events in early.values():
            spill.add_workflows([mapper.to_stored_event(e) for e in events])
    parts = [
        Part(
            str(spill.path),
            low,
            high,
            str(folder / f"part-{n}.db"),
            actor,
            on_behalf_of,
            build,
            rows,
            folders,
            str(folder / "problems") if len(cuts) > 1 else "",
            tuple(flows),
        )
        for n, (low, high) in enumerate(cuts)
    ]

    def checking(step: int) -> None:
        if progress:
            progress(CHECKING, step, summary.rows)

    found: list[Checked] = []
    if len(parts) == 1:
        checker = Checker(register, register.library, spill, spill, parts[0])
        checker.run(checking)
        found, built = [checker.checked()], []
    else:
        for part in parts:
            Spill.make(Path(part.out))
        spill.share()
        copying = writer is not None and build
        if writer is not None and copying:
            writer.total = summary.rows + len(early)  # its events, if nothing is wrong
            writer.views = rows
            writer.begin([spill.path, *(Path(p.out) for p in parts)])

        def arrived(run: Checked) -> None:
            """A run checked, in order: written at once while nothing is wrong anywhere
            (spill file 0 holds the workflow versions, the runs' are numbered after it)."""
            nonlocal copying
            found.append(run)
            copying = copying and not run.problems and not os.path.exists(parts[0].flag)
            if writer is not None and copying:
                writer.copy(len(found))

        def here(runs: list[Part], told: Callable[[int], None]) -> None:
            """This process's run, built straight into the register once the workflow
            versions are (spill file 0); its own spill file stays empty."""
            for part in runs:
                into = None
                if writer is not None and copying:
                    writer.copy(0)
                    into = bulk.Direct(writer)
                arrived(_check_part(register, register.library, part, told, into))

        groups, taken = [], 0
        for runs in plan:
            groups.append(parts[taken : taken + len(runs)])
            taken += len(runs)
        for _, run in fanout.run(
            register.location,
            "twinflow.backfill:check_runs",
            groups,
            checking,
            here=here,
            started=started,
            doing="checking the file's cases",
        ):
            arrived(run)
        built = [Path(part.out) for part in parts]
    for checked in found:
        problems.extend(checked.problems)
        for name in COUNTED:
            setattr(summary, name, getattr(summary, name) + checked.counts.get(name, 0))
    needed = dict.fromkeys(digest for checked in found for _, digest in checked.needed)
    summary.workflows += len(needed)
    summary.events += len(needed)
    if build and not problems and needed.keys() != early.keys():
        raise TwinflowError(
            "a workflow file changed, or another writer stored a workflow version, while the "
            "import ran; nothing was imported: import the file again"
        )
    return built, rows and all(checked.views for checked in found)


def shares(count: int) -> list[list[float]]:
    """How `count` processes share a file's rows: for each process, the shares of the runs
    it checks, this one's first. This one writes every run into the register, as soon as
    it is checked and all before it are written, so it checks a smaller share, one that
    leaves it done when the others are (WRITING); each other process checks its share in
    up to PIECES runs, so that all but its last are written while it checks on."""
    if count < 2:
        return [[1.0]]
    others = count - 1
    mine = max(0.0, (1 - WRITING * others) / count)
    pieces = max(1, min(PIECES, (MOST_ATTACHED - 2) // others))
    each = (1 - mine) / others / pieces
    return [[mine], *([each] * pieces for _ in range(others))]


def processes(rows: int) -> int:
    """How many processes check a file of `rows` rows (fanout.workers): at most one fewer
    than the files SQLite attaches at once, as the write attaches each one's spill file
    besides the command's (bulk.Writing)."""
    return min(fanout.workers(rows), MOST_ATTACHED - 1)


def _loadable(register: Register, names: list[str]) -> list[Workflow]:
    """The current versions of the workflows of these names that can be used (a name that
    cannot is left to the case checks, which say why)."""
    flows = []
    for name in names:
        with suppress(TwinflowError):
            flows.append(register.library.get(name))
    return flows


def _workflow_events(
    register: Register, flows: list[Workflow], actor: str, on_behalf_of: str | None
) -> dict[str, list[Any]]:
    """The events that would store each of these workflow versions the register does not
    hold, by digest."""
    events = {}
    for flow in flows:
        try:
            if register._stored_workflow(flow) is None:
                stored = StoredWorkflow.register(flow, actor, on_behalf_of)
                events[flow.digest] = list(stored.collect_events())
        except TwinflowError:
            continue
    return events


def _views_current(register: Register, progress: Progress | None) -> bool:
    """Whether the read models have seen the whole log, once brought up to it (as the
    catch-up after the import would): then the rows of the cases a file opens can be made
    while their events are built, and written with them (checked again then, as the events
    are written: bulk.Writing)."""
    catch_up_views(register, progress)
    last = register.events.recorder.max_notification_id() or 0
    return register.views.position() == last


def check_runs(
    register: Register,
    runs: list[Part],
    emit: Callable[[Any], None],
    progress: Callable[[int], None],
) -> None:
    """A worker process's runs of cases (fanout.py), each sent as soon as it is checked."""
    library = Library(runs[0].folders) if runs else Library()
    for part in runs:
        emit(_check_part(register, library, part, progress))


def _holds_any(register: Register, slugs: list[str]) -> bool:
    """Whether the register holds any of these cases (an empty one holds none)."""
    if not register.events.recorder.max_notification_id():
        return False
    return bool(bulk.Table(register).existing([case_id(slug) for slug in slugs]))


def _check_part(
    register: Register,
    library: Library,
    part: Part,
    progress: Callable[[int], None],
    into: bulk.Direct | None = None,
) -> Checked:
    """Check a run and build it into its spill file, or `into` the register directly."""
    with ExitStack() as stack:
        source = stack.enter_context(Spill(Path(part.source), reading=True))
        out = into or stack.enter_context(Spill(Path(part.out), made=True))
        checker = Checker(register, library, source, out, part)
        checker.run(progress)
        out.seal()
        return checker.checked()


class Checker:
    """Checks a run of cases (`part`) read from `source`, and builds them into `out`."""

    def __init__(
        self,
        register: Register,
        library: Library,
        source: Spill,
        out: Spill | bulk.Direct,
        part: Part,
    ) -> None:
        self.register, self.library, self.source, self.spill = register, library, source, out
        self.part = part
        self.build = part.build
        self.actor, self.on_behalf_of = part.actor, part.on_behalf_of
        self.problems: list[Problem] = []
        self.summary = Summary("")
        self.needed: list[tuple[str, str]] = []  # (name, digest) of workflows to store
        # Only a register that holds something can hold the cases of the file.
        self.empty = not register.events.recorder.max_notification_id()
        self.flows: dict[str, Workflow | str] = {}  # by name; a str says why it cannot be used
        self.given = {flow.name: flow for flow in part.flows}
        self.unstored: set[str] = set()  # digests of workflow versions no case used yet
        self.known: dict[str, Rules] = {}  # by workflow digest
        self.now = dt.datetime.now(dt.UTC)
        # A row's values are strings, None and lists of strings (rowcheck.py)
        self.builder = Builder(register.events.mapper, self.actor, self.on_behalf_of, plain=True)
        # The read models' rows of the new cases (`view_rows`), or None
        self.rows = projection.new_rows() if part.rows else None
        self.pending = 0  # events whose rows are not spilled yet
        self.seen = 0  # cases checked

    def run(self, progress: Callable[[int], None] | None = None) -> None:
        low, high = self.part.low, self.part.high
        # The file's cases the register holds, asked all at once: loading each case to find
        # out cost more than the rest of the import (none to ask in an empty register).
        held: set[str] = set()
        if not self.empty:
            ids = {case_id(slug): slug for slug in self.source.names[low:high]}
            held = {ids[found] for found in bulk.Table(self.register).existing(list(ids))}
        for slug, rows in self.source.by_case(low, high):
            self.case(slug, rows, held=slug in held)
            if progress:
                progress(len(rows))
        if self.rows is not None:
            self.spill.add_view_rows(self.rows)

    def checked(self) -> Checked:
        counts = {name: getattr(self.summary, name) for name in COUNTED}
        return Checked(self.problems, counts, self.needed, self.rows is not None)

    def bad(self, spilled: Spilled, column: str | None, value: Any, reason: str) -> None:
        text = None if value is None else str(value)
        self.problems.append(Problem(spilled.line, column, text, reason))
        if self.part.flag and len(self.problems) == 1:
            Path(self.part.flag).touch()

    # ------------------------------------------------------------------ one case

    def case(self, slug: str, rows: list[Spilled], *, held: bool) -> None:
        self.seen += 1
        if self.build and self.part.flag and self.seen % LOOKS == 1:
            # another run found a problem: nothing will be written
            self.build = not os.path.exists(self.part.flag)
        existing = self.register._find_case(slug) if held else None
        good = [r for r in rows if not r.broken]
        opens = [r for r in good if r.row["kind"] == "open"]
        others = [r for r in good if r.row["kind"] != "open"]
        base: list[timeline.Item] = []
        if existing is not None:
            for spilled in opens:
                self.bad(
                    spilled,
                    "action",
                    "open",
                    f"opens case {slug!r} a second time: the register holds it since "
                    f"{timeline.in_force(existing.entries)[0].date}; remove this row",
                )
            try:
                flow = self.register.workflow_of(existing, check_file=True)
            except TwinflowError as error:
                self.bad(rows[0], "case", slug, f"cannot take new rows: {error}")
                return
            parties, base, opening = (
                list(existing.parties),
                timeline.in_force(existing.entries),
                None,
            )
        elif not opens:
            if not any(r.broken and r.row["kind"] == "open" for r in rows):
                for spilled in good:
                    self.bad(
                        spilled,
                        "case",
                        slug,
                        "is not in the register and no row of the file opens it: add an open "
                        "row for it, or check the name",
                    )
            return
        else:
            opening = opens[0]
            for spilled in opens[1:]:
                self.bad(
                    spilled,
                    "action",
                    "open",
                    f"opens case {slug!r} a second time (line {opening.line} opens it): "
                    "keep one open row",
                )
            found = self.workflow(opening)
            if found is None:
                return
            flow, parties = found, opening.row["parties"]
            self.check_opening(opening, flow, parties)
        kept = [r for r in others if self.check_row(r, flow, parties, slug)]
        ordered = ([opening] if opening else []) + kept
        first_seq = existing.version + 1 if existing else 1
        new = {first_seq + i: r for i, r in enumerate(ordered)}
        steps = self.check_timeline(slug, flow, base, new)
        if self.problems:
            return
        self.count(existing is None, kept, flow)
        if self.build:
            self.emit(slug, flow, existing, opening, parties, kept, steps)

    def workflow(self, opening: Spilled) -> Workflow | None:
        name = opening.row["workflow"]
        if name not in self.flows:
            library = self.library
            try:
                flow = self.given[name] if name in self.given else library.get(name)
                if self.register._stored_workflow(flow) is None:
                    self.unstored.add(flow.digest)
                self.flows[name] = flow
            except NotFound:
                known = ", ".join(sorted(library.files())) or "none"
                self.flows[name] = f"is not a known workflow: known: {known}"
            except TwinflowError as error:
                self.flows[name] = f"cannot be used: {error}"
        found = self.flows[name]
        if isinstance(found, str):
            self.bad(opening, "workflow", name, found)
            return None
        return found

    def check_opening(self, opening: Spilled, flow: Workflow, parties: list[str]) -> None:
        values = opening.row["values"]
        self.check_body(opening, values["body"], flow.open_by, flow, "open")
        self.check_requires(opening, flow.open_requires, "open")
        party = values.get("party")
        if party and party not in parties:
            self.bad(opening, "party", party, f"is not among the parties: {'; '.join(parties)}")

    def check_row(self, spilled: Spilled, flow: Workflow, parties: list[str], slug: str) -> bool:
        before = len(self.problems)
        row, values = spilled.row, spilled.row["values"]
        if row.get("workflow") and row["workflow"] != flow.name:
            self.bad(
                spilled,
                "workflow",
                row["workflow"],
                f"is not the workflow of case {slug!r}, which follows {flow.name!r}",
            )
        if row["kind"] == "decision":
            trigger = values["trigger"]
            transition = self.rules(flow).transitions.get(trigger)
            if transition is None:
                self.bad(
                    spilled,
                    "action",
                    trigger,
                    f"is not a decision of workflow {flow.name!r} v{flow.version}: known: "
                    f"{', '.join(flow.trigger_names)} (or open, or note:KIND)",
                )
            else:
                self.check_body(spilled, values["body"], transition.by, flow, trigger)
                self.check_requires(spilled, transition.requires, trigger)
        elif values["kind"] not in self.rules(flow).notes:
            self.bad(
                spilled,
                "action",
                f"note:{values['kind']}",
                f"is not a note kind of workflow {flow.name!r}: known: "
                + ", ".join(f"note:{n}" for n in flow.note_names),
            )
        party = values.get("party")
        if party and party not in parties:
            self.bad(
                spilled,
                "party",
                party,
                f"is not a party to case {slug!r}: parties: {'; '.join(parties)}",
            )
        return len(self.problems) == before

    def check_body(
        self, spilled: Spilled, body: str, allowed: tuple[str, ...], flow: Workflow, trigger: str
    ) -> None:
        if body not in self.rules(flow).bodies:
            self.bad(
                spilled,
                "by",
                body,
                f"is not a body kind of workflow {flow.name!r}: "
                f"known: {', '.join(flow.body_names)}",
            )
        elif body not in allowed:
            self.bad(
                spilled,
                "by",
                body,
                f"may not {trigger} a {flow.name!r} case: allowed: {', '.join(allowed)}",
            )

    def rules(self, flow: Workflow) -> Rules:
        found = self.known.get(flow.digest)
        if found is None:
            found = self.known[flow.digest] = Rules(flow)
        return found

    def check_requires(self, spilled: Spilled, required: tuple[str, ...], trigger: str) -> None:
        for name in required:
            if not spilled.row["values"].get(name):
                self.bad(
                    spilled, COLUMN_OF.get(name, name), None, f"is empty: {trigger!r} requires it"
                )

    # ------------------------------------------------------------------ the timeline

    def check_timeline(
        self, slug: str, flow: Workflow, base: list[timeline.Item], new: dict[int, Spilled]
    ) -> list[timeline.Step]:
        """Report every new row that makes the case's timeline illegal, leaving each out in
        turn so that the next one is found too. Returns the path of a legal one (none where
        the register's own decisions make it illegal: only a held case's can)."""
        items = base + [self.item(seq, spilled) for seq, spilled in new.items()]
        opened = next(i for i in items if i.kind == "decision" and i.trigger == timeline.OPEN)
        for item in items:
            if item.kind == "note" and item.seq in new and item.date.latest < opened.date.earliest:
                self.bad(
                    new[item.seq],
                    "decided_on",
                    item.date,
                    f"is before case {slug!r} was opened ({opened.date}, "
                    f"{self.label(opened, new)}): check the date",
                )
        for _ in range(len(items)):
            try:
                return timeline.path(items, flow)
            except timeline.IllegalPath as illegal:
                blamed, reason = self.blame(illegal, slug, flow, new, opened)
                if blamed is None:
                    return []
                column = "action"
                value: Any = blamed.trigger
                if illegal.state is None:
                    column = "effective_on" if blamed.values.get("effective_on") else "decided_on"
                    value = blamed.date
                self.bad(new[blamed.seq], column, value, reason)
                items = [i for i in items if i.seq != blamed.seq]
        return []

    def blame(
        self,
        illegal: timeline.IllegalPath,
        slug: str,
        flow: Workflow,
        new: dict[int, Spilled],
        opened: timeline.Item,
    ) -> tuple[timeline.Item | None, str]:
        failed, state = illegal.item, illegal.state
        allowed = ", ".join(flow.allowed_triggers(state)) if state else ""
        if failed.seq in new:
            if state is None:
                return failed, (
                    f"is before case {slug!r} was opened ({opened.date}, "
                    f"{self.label(opened, new)}): check the date"
                )
            last = illegal.before[-1].item
            return failed, (
                f"cannot be taken on case {slug!r} effective {failed.date}: it is {state!r} "
                f"since {last.date} ({self.label(last, new)}); allowed from {state!r}: "
                f"{allowed or 'none'}"
            )
        # A recorded decision no longer fits: blame the last new one placed before it.
        earlier = [s.item for s in illegal.before if s.item.seq in new]
        if not earlier:
            return None, ""
        blamed = earlier[-1]
        return blamed, (
            f"cannot be taken on case {slug!r} effective {blamed.date}: the recorded later "
            f"decision #{failed.seq} {failed.trigger!r} (effective {failed.date}) would no "
            f"longer be allowed, because the case would be {state!r} by then (allowed from "
            f"{state!r}: {allowed or 'none'}); check the dates"
        )

    def item(self, seq: int, spilled: Spilled) -> timeline.Item:
        values = spilled.row["values"]
        if spilled.row["kind"] == "note":
            return timeline.Item(
                seq, "note", self.now, self.actor, values, date_of(values["on"], "date")
            )
        effective = values.get("effective_on") or values["decided_on"]  # as timeline.effective_of
        return timeline.Item(
            seq, "decision", self.now, self.actor, values, date_of(effective, "date")
        )

    @staticmethod
    def label(item: timeline.Item, new: dict[int, Spilled]) -> str:
        return f"line {new[item.seq].line}" if item.seq in new else f"#{item.seq}"

    # ------------------------------------------------------------------ building

    def count(self, opened: bool, kept: list[Spilled], flow: Workflow) -> None:
        if opened:
            self.summary.cases_opened += 1
            if flow.digest in self.unstored:
                self.unstored.discard(flow.digest)
                self.needed.append((flow.name, flow.digest))
        else:
            self.summary.cases_extended += 1
        notes = sum(1 for r in kept if r.row["kind"] == "note")
        self.summary.notes += notes
        self.summary.decisions += len(kept) - notes
        self.summary.events += len(kept) + int(opened)

    def emit(
        self,
        slug: str,
        flow: Workflow,
        existing: Case | None,
        opening: Spilled | None,
        parties: list[str],
        kept: list[Spilled],
        steps: list[timeline.Step],
    ) -> None:
        """The case's new events, as `Case.open`, `decide` and `note` would record them
        (eventbytes.py builds the same stored records without the event objects); `steps`,
        its path as checked."""
        if existing is None:
            assert opening is not None
            row = opening.row
            chain = self.builder.open(slug, row["title"], parties, flow, row["values"])
        else:
            chain = self.builder.extend(existing)
        for spilled in kept:
            if spilled.row["kind"] == "note":
                chain.note(spilled.row["values"])
            else:
                chain.decide(spilled.row["values"])
        self.spill.add_records(chain.records)
        if self.rows is not None:
            if opening is not None:
                self.view_rows(chain, flow, slug, opening.row["title"], parties, steps)
            else:
                self.rows = None

    def view_rows(
        self,
        chain: Chain,
        flow: Workflow,
        slug: str,
        title: str,
        parties: list[str],
        steps: list[timeline.Step],
    ) -> None:
        """A new case's rows in the read models, as a rebuild makes them from its events
        (projection._direct; tests/test_import_views.py compares both): its path is the
        one its rows were checked by (the same decisions, dates and order)."""
        assert self.rows is not None
        audit = []
        # as projection.audit_of makes them, numbered among the spill file's events
        number = self.spill.built - len(chain.recorded)
        for kind, seq, moment, fields in chain.recorded:
            number += 1
            detail = projection.audit_detail(kind, fields)
            audit.append(
                (number, slug, seq, kind, detail, self.actor, moment, fields["on_behalf_of"])
            )
        head = projection.Head(
            slug, title, flow.name, flow.version, flow.digest, list(parties), chain.version
        )
        projection.add_case(self.rows, head, steps, audit)
        self.pending += len(audit)
        if self.pending >= BATCH:
            self.spill.add_view_rows(self.rows)
            self.rows, self.pending = projection.new_rows(), 0
