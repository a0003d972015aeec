"""The steps read model: the path through its workflow of each case with more than SHORT
decisions, one row per decision, so that the state on a date is read from the few steps around
that date, however long the history. A shorter path is read whole, from the `steps` of its
case's row in twinflow_cases (`status_on`): it is cheaper than the seeks below, and the rows
of every short case would be most of what a rebuild writes (bench/RESULTS.md, fix 38).

timeline.status_on needs, for a date, the last step that surely took effect before it and the
first that surely had not; between them lie the steps whose imprecise dates straddle it. Steps
are in valid-time order, so their start days are in order: indexed seeks find where the date
falls, and short walks from there pass the straddling steps. `reach`, the running maximum of
the latest days, marks the prefix that surely took effect; `since_idx` names the step each
state dates from. tests/test_performance_paths.py checks that the answers are identical to
timeline.status_on over the whole path, on many dates, either way."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twinflow import timeline
from twinflow.dates import PartialDate

TABLES = (
    "CREATE TABLE IF NOT EXISTS twinflow_steps (slug TEXT NOT NULL, idx INTEGER NOT NULL, "
    "seq INTEGER, decision TEXT, date_text TEXT, start TEXT, earliest TEXT, latest TEXT, "
    "state TEXT, changed INTEGER, since_idx INTEGER, reach TEXT, "
    "PRIMARY KEY (slug, idx)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS twinflow_steps_reach ON twinflow_steps (slug, reach, idx)",
    "CREATE INDEX IF NOT EXISTS twinflow_steps_start ON twinflow_steps (slug, start, idx)",
)
CLEAR = ("DELETE FROM twinflow_steps",)
COLUMNS = (
    "slug, idx, seq, decision, date_text, start, earliest, latest, state, changed, since_idx, reach"
)
# What a row says about its own step; the other columns follow from the steps before it.
OWN = slice(2, 10)
CHUNK = 500  # slugs per query, well under the bound parameters SQLite allows
SHORT = 32  # decisions a path may have and still be read whole from its case's row
Sql = Callable[[str], str]


def rows_of(slug: str, steps: Sequence[timeline.Step]) -> list[tuple[Any, ...]]:
    """The case's rows: none for a path of SHORT steps or fewer."""
    rows: list[tuple[Any, ...]] = []
    if len(steps) <= SHORT:
        return rows
    since, reach = 0, ""
    for idx, step in enumerate(steps):
        date = step.item.date
        start, earliest, latest = date.iso
        if step.changes_state:
            since = idx
        reach = max(reach, latest)
        rows.append(
            (
                slug,
                idx,
                step.item.seq,
                step.item.trigger,
                date.text,
                start,
                earliest,
                latest,
                step.after,
                int(step.changes_state),
                since,
                reach,
            )
        )
    return rows


def write(cursor: Any, sql: Sql, paths: Mapping[str, Sequence[timeline.Step]]) -> int:
    """Bring the cases' rows in line with their paths, rewriting each only from its first step
    that differs (a decision recorded at the end of a timeline writes one row); returns how
    many rows were written."""
    if not paths:
        return 0
    stored: dict[str, list[tuple[Any, ...]]] = {slug: [] for slug in paths}
    slugs = list(paths)
    for chunk in range(0, len(slugs), CHUNK):
        some = slugs[chunk : chunk + CHUNK]
        cursor.execute(
            sql(
                "SELECT slug, idx, seq, decision, date_text, start, earliest, latest, state, "
                f"changed FROM twinflow_steps WHERE slug IN ({', '.join('?' * len(some))}) "
                "ORDER BY slug, idx"
            ),
            some,
        )
        for row in cursor.fetchall():
            values = tuple(row.values()) if isinstance(row, dict) else tuple(row)
            stored[values[0]].append(values[1:])
    cut, new = [], []
    for slug, path in paths.items():
        rows = rows_of(slug, path)
        same = 0
        for old, row in zip(stored[slug], rows, strict=False):
            if old[0] != same or tuple(old[1:]) != row[OWN]:
                break
            same += 1
        if same == len(stored[slug]) == len(rows):
            continue
        if len(stored[slug]) > same:
            cut.append((slug, same))
        new += rows[same:]
    if cut:
        cursor.executemany(sql("DELETE FROM twinflow_steps WHERE slug = ? AND idx >= ?"), cut)
    if new:
        marks = ", ".join("?" * len(COLUMNS.split(",")))
        cursor.executemany(sql(f"INSERT INTO twinflow_steps ({COLUMNS}) VALUES ({marks})"), new)
    return len(new)


def status_on(
    cursor: Any, sql: Sql, slug: str, stored: str | None, date: PartialDate
) -> tuple[timeline.Status, PartialDate] | None:
    """The state of the case on `date`, as timeline.status_on gives it over the whole path,
    and the date of its opening; None where the read models do not hold its whole path.

    `stored`: the `steps` of the case's row in twinflow_cases where the case has SHORT
    events or fewer (`stored_steps`), else None. Such a case's path is read from them (it has
    no rows here, unless an earlier twinflow wrote them); a longer case's path is read from
    its rows here, and from its `steps` (which may be long) only where it has none (many
    events, few decisions). Where both hold the path, both hold the same."""
    if stored is not None:
        found = _from_stored(stored, date)
        if found is not None:
            return found
    found = _from_rows(cursor, sql, slug, date)
    if found is not None or stored is not None:
        return found
    cursor.execute(sql("SELECT steps FROM twinflow_cases WHERE slug = ?"), (slug,))
    row = cursor.fetchone()
    return _from_stored(row["steps"], date) if row and row["steps"] else None


def stored_steps() -> str:
    """The column a query on twinflow_cases reads as `stored` for status_on: a case's steps
    where it has SHORT events or fewer (its path then has SHORT steps or fewer)."""
    return f"CASE WHEN last_seq <= {int(SHORT)} THEN steps END AS steps"


def _from_stored(stored: str, date: PartialDate) -> tuple[timeline.Status, PartialDate] | None:
    raw = json.loads(stored)
    if not raw or len(raw[0]) < len(STORED):
        return None  # written before the steps of a case's row named their decisions
    path = [stored_step(entry) for entry in raw]
    return timeline.status_on(path, date), path[0].item.date


# What the `steps` of a case's row in twinflow_cases hold for each step, in this order
# (projection.case_row). Rows written by an earlier twinflow hold the first five.
STORED = ("earliest", "latest", "state", "date_text", "changed", "seq", "decision")


def stored_step(entry: Sequence[Any]) -> timeline.Step:
    """A step as the `steps` of a case's row hold it: its date's start is its earliest day
    (what timeline.status_on and the answers read of a date are its bounds and text)."""
    earliest, latest, after, text, changed, *named = entry
    first = dt.date.fromisoformat(earliest)
    date = PartialDate(first, first, dt.date.fromisoformat(latest), text)
    seq, values = (named[0], {"trigger": named[1]}) if named else (0, {})
    item = timeline.Item(seq, "decision", dt.datetime.min, "", values, date)
    return timeline.Step(item, None if changed else after, after)


def _from_rows(
    cursor: Any, sql: Sql, slug: str, date: PartialDate
) -> tuple[timeline.Status, PartialDate] | None:
    earliest, latest = date.earliest.isoformat(), date.latest.isoformat()

    def first(where: str, params: tuple[Any, ...], order: str = "idx") -> Any:
        cursor.execute(
            sql(
                f"SELECT {COLUMNS} FROM twinflow_steps WHERE slug = ? AND {where} "
                f"ORDER BY {order} LIMIT 1"
            ),
            (slug, *params),
        )
        return cursor.fetchone()

    def rows(where: str, params: tuple[Any, ...]) -> list[Any]:
        cursor.execute(
            sql(f"SELECT {COLUMNS} FROM twinflow_steps WHERE slug = ? AND {where} ORDER BY idx"),
            (slug, *params),
        )
        return list(cursor.fetchall())

    opening = first("idx = 0", ())
    if opening is None:
        return None
    count = first("idx >= 0", (), "idx DESC")["idx"] + 1
    row = first("reach <= ?", (earliest,), "reach DESC, idx DESC")
    prefix = row["idx"] if row else -1  # steps 0..prefix all surely took effect
    # The first step that surely had not taken effect: from the first start after the date,
    # past the steps whose imprecision reaches back over it.
    if opening["earliest"] > latest:
        first_not_may = 0
    else:
        row = first("idx > 0 AND start > ?", (latest,), "start, idx")
        row = row and first("idx >= ? AND earliest > ?", (row["idx"], latest))
        first_not_may = row["idx"] if row else count
    # The last step that surely had: from the last start on or before the date, back past
    # the steps whose imprecision reaches beyond it.
    row = first("idx > 0 AND start <= ?", (earliest,), "start DESC, idx DESC")
    row = row and first("idx BETWEEN 1 AND ? AND latest <= ?", (row["idx"], earliest), "idx DESC")
    last_must = row["idx"] if row else (0 if opening["latest"] <= earliest else -1)
    valid = list(range(last_must + 1, first_not_may + 1))
    if not valid:  # overlapping imprecise dates: what has surely happened, as status_on does
        cursor.execute(
            sql(
                "SELECT COUNT(*) AS n FROM twinflow_steps WHERE slug = ? AND idx > ? "
                "AND idx <= ? AND latest <= ?"
            ),
            (slug, prefix, max(last_must, prefix), earliest),
        )
        valid = [prefix + 1 + cursor.fetchone()["n"]]
    chosen = max(valid)
    around = {r["idx"]: r for r in rows("idx BETWEEN ? AND ?", (min(valid) - 1, chosen - 1))}
    possible = tuple(dict.fromkeys(around[j - 1]["state"] if j else None for j in valid))
    since = None
    if chosen:
        since_idx = around[chosen - 1]["since_idx"]
        since = _step(around.get(since_idx) or rows("idx = ?", (since_idx,))[0])
    pending = rows("idx > ? AND idx < ? AND latest > ?", (prefix, chosen, earliest))
    found = timeline.Status(
        around[chosen - 1]["state"] if chosen else None,
        len(possible) == 1,
        possible,
        since,
        tuple(_step(r) for r in pending),
    )
    return found, _step(opening).item.date


def _step(row: Any) -> timeline.Step:
    date = PartialDate(
        dt.date.fromisoformat(row["start"]),
        dt.date.fromisoformat(row["earliest"]),
        dt.date.fromisoformat(row["latest"]),
        row["date_text"],
    )
    item = timeline.Item(
        row["seq"], "decision", dt.datetime.min, "", {"trigger": row["decision"]}, date
    )
    state = row["state"]
    return timeline.Step(item, None if row["changed"] else state, state)
