"""Export as a backup, as the import CSV and as CloudEvents; restore; every round trip."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.conftest import Invoke, fresh_postgres_url
from tests.test_import import AS_OF, FIXTURE, log
from twinflow.application import Register
from twinflow.cli import cli
from twinflow.errors import BadFile, RuleViolation
from twinflow.exchange import import_file
from twinflow.exporter import export
from twinflow.restore import restore

# What a history row says about recording, which an export and re-import need not keep: the
# import records afresh what was in force (corrections applied, retracted events left out).
RECORDING = ("seq", "recorded_at", "actor", "on_behalf_of", "changes", "original", "amended")


@pytest.fixture
def filled(register: Register) -> Register:
    """The fixture's cases, with a correction and a retraction on top."""
    import_file(register, FIXTURE, actor="clerk-a")
    register.correct(
        "groningen-kaliningrad", 3, why="the minutes say so", reason="contacts paused officially"
    )
    register.retract("coevorden-brest", 3, why="the letter was never sent")
    return register


@pytest.fixture
def other(db: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Register]:
    """A second, empty register on the same backend as `register`."""
    if db.startswith("postgresql"):
        urls = fresh_postgres_url(request.getfixturevalue("postgres_admin"))
        reg = Register.at(next(urls), create=True)
        yield reg
        reg.close()
        next(urls, None)
        return
    reg = Register.at(str(tmp_path / "other.db"), create=True)
    yield reg
    reg.close()


def save(register: Register, fmt: str, path: Path, **options: Any) -> Path:
    path.write_text("".join(export(register, fmt, **options)), encoding="utf-8")
    return path


def answer(status: dict[str, Any]) -> dict[str, Any]:
    """A status without what depends on recording: seq numbers (a retracted event is not
    exported, so later ones are numbered anew) and the moment of asking."""
    found = {k: v for k, v in status.items() if k not in ("since_seq", "known_at")}
    if "note" in found:
        found["note"] = re.sub(r"#\d+", "#", found["note"])
    return found


def histories(register: Register) -> dict[str, list[dict[str, Any]]]:
    cases = [row["case"] for row in register.list_cases()]
    return {
        case: [
            {k: v for k, v in h.items() if k not in RECORDING}
            for h in register.history(case)
            if not h.get("retracted")
        ]
        for case in cases
    }


# ---------------------------------------------------------------------------- the backup


def test_the_ndjson_backup_holds_every_field_of_every_event_in_global_order(
    filled: Register, tmp_path: Path
) -> None:
    *lines, closing = [json.loads(line) for line in export(filled, "ndjson")]

    assert [line["position"] for line in lines] == [row[0] for row in log(filled)]
    # the closing line: the count and the digest `twinflow digest` prints for the whole log
    assert closing == {"end": "twinflow backup", "events": 18, "digest": filled.digest()["digest"]}
    first_case = lines[1]
    assert list(first_case)[:10] == [
        "position",
        "id",
        "seq",
        "topic",
        "timestamp",
        "originator_topic",
        "actor",
        "on_behalf_of",
        "prev_hash",
        "hash",
    ]
    assert first_case["topic"] == "twinflow:case:opened"
    assert first_case["decision"]["decided_on"] == "2000"
    retraction = lines[-1]
    assert (retraction["topic"], retraction["target"], retraction["why"]) == (
        "twinflow:case:retracted",
        3,
        "the letter was never sent",
    )


def test_restore_into_an_empty_register_reproduces_the_log_exactly(
    filled: Register, other: Register, tmp_path: Path
) -> None:
    backup = save(filled, "ndjson", tmp_path / "backup.ndjson")

    result = restore(other, backup)

    assert str(result) == (
        "restored backup.ndjson: 18 events of 4 case(s) and 1 workflow version(s), one transaction"
    )
    assert log(other) == log(filled)  # positions, ids, seqs, topics and stored bytes
    assert other.verify()["holds"]
    assert other.digest()["digest"] == filled.digest()["digest"]
    for case, as_of, _ in AS_OF:
        asked = {"as_of": as_of, "known_at": "2099-01-01"}  # "now" could differ by a second
        assert other.status(case, **asked) == filled.status(case, **asked)
    # the store numbers what comes next after the restored log
    other.note("zwolle-lueneburg", "visit", on="2025", summary="a visit", actor="clerk-b")
    assert log(other)[-1][0] == log(filled)[-1][0] + 1


def test_a_backup_restores_across_backends(
    filled: Register, tmp_path: Path, postgres_admin: object
) -> None:
    backup = save(filled, "ndjson", tmp_path / "backup.ndjson")
    target = (
        Register.at(str(tmp_path / "copy.db"), create=True)
        if filled.location.kind == "postgres"
        else None
    )
    urls = fresh_postgres_url(postgres_admin) if target is None else iter(())
    target = target or Register.at(next(urls), create=True)
    try:
        restore(target, backup)
        assert target.digest() == filled.digest()
        assert target.verify()["holds"]
    finally:
        target.close()
        next(urls, None)


def test_restore_into_a_register_that_holds_events_is_refused(
    filled: Register, other: Register, tmp_path: Path
) -> None:
    backup = save(filled, "ndjson", tmp_path / "backup.ndjson")
    import_file(other, FIXTURE)
    before = log(other)
    with pytest.raises(RuleViolation) as refused:
        restore(other, backup)
    assert str(refused.value) == (
        f"the register {other.location.describe()} already holds events: restore only into "
        "a new, empty register (give another --db)"
    )
    assert log(other) == before


def tampered(backup: Path, change: Any) -> Path:
    lines = backup.read_text(encoding="utf-8").splitlines(keepends=True)
    path = backup.with_name("tampered.ndjson")
    path.write_text("".join(change(lines)), encoding="utf-8")
    return path


def edit_reason(lines: list[str]) -> list[str]:
    return [line.replace("the war against Ukraine", "the war") for line in lines]


def wrong_digest(lines: list[str]) -> list[str]:
    """The closing line's digest changed in its last hex digit."""
    closing = json.loads(lines[-1])
    position, value = closing["digest"].split(":")
    closing["digest"] = f"{position}:{value[:-1]}{'1' if value[-1] == '0' else '0'}"
    return [*lines[:-1], json.dumps(closing) + "\n"]


@pytest.mark.parametrize(
    ("change", "line", "reason"),
    [
        (
            edit_reason,
            10,
            "the event does not match its hash: its content was changed after it was recorded; "
            "restore from an untouched backup",
        ),
        (
            lambda lines: lines[:4] + lines[5:],
            5,
            "seq 5 where #4 of its chain comes next: an event is missing, repeated or out of order",
        ),
        (
            lambda lines: [*lines[:-2], lines[-2][:40]],
            18,
            "the line is not a complete JSON object (Unterminated string starting at, column 21); "
            "the file looks truncated",
        ),
        (
            lambda lines: [
                lines[0].replace("twinflow:workflow:registered", "os:system"),
                *lines[1:],
            ],
            1,
            "topic 'os:system' is not a twinflow event type",
        ),
        (
            lambda lines: lines[:-1],  # cut on a line boundary: only the closing line is gone
            18,
            "the backup ends without its closing line: it was cut short; restore from a "
            "complete backup",
        ),
        (
            lambda lines: lines[:-2],  # cut by one line: the closing line and the last event
            17,
            "the backup ends without its closing line: it was cut short; restore from a "
            "complete backup",
        ),
        (
            lambda lines: lines[:-2] + lines[-1:],  # the last event removed, closing line kept
            18,
            "the closing line counts 18 events, but the backup holds 17: events were removed "
            "or added; restore from a complete backup",
        ),
        (wrong_digest, 19, None),
        (
            lambda lines: [*lines, lines[0]],
            20,
            "a line follows the closing line: is the file two backups?",
        ),
    ],
)
def test_a_backup_that_does_not_verify_is_refused_and_nothing_is_written(
    filled: Register, other: Register, tmp_path: Path, change: Any, line: int, reason: str | None
) -> None:
    backup = tampered(save(filled, "ndjson", tmp_path / "backup.ndjson"), change)
    with pytest.raises(BadFile) as refused:
        restore(other, backup)
    if reason is None:  # a digest that differs from the restored events' in one hex digit
        wrong = json.loads(backup.read_text(encoding="utf-8").splitlines()[-1])["digest"]
        reason = (
            f"the events do not match the digest {wrong} of the closing line: an event was "
            "removed, added, changed or reordered; restore from a complete backup"
        )
    assert str(refused.value) == f"tampered.ndjson: line {line}: {reason}; nothing was restored"
    assert log(other) == []
    assert other.digest()["digest"] == "0:" + hashlib.sha256().hexdigest()


# ---------------------------------------------------------------------------- csv


def test_csv_export_then_import_gives_the_same_statuses_histories_and_listings(
    filled: Register, other: Register, tmp_path: Path
) -> None:
    exported = save(filled, "csv", tmp_path / "cases.csv")
    assert exported.read_text().splitlines()[0] == (
        "case,workflow,action,by,party,body_name,decided_on,effective_on,published_on,scope,"
        "vote,reference,reason,source,title,parties,summary"
    )

    summary = import_file(other, exported)

    assert (summary.cases_opened, summary.decisions, summary.notes) == (4, 7, 3)  # one retracted
    for case, as_of, _ in AS_OF:
        for known in (None, "2099-01-01"):
            mine = answer(filled.status(case, as_of=as_of, known_at=known))
            assert answer(other.status(case, as_of=as_of, known_at=known)) == mine
    assert histories(other) == histories(filled)
    assert other.list_cases(as_of="2022-06-01") == filled.list_cases(as_of="2022-06-01")
    corrected = [h for h in other.history("groningen-kaliningrad") if h["seq"] == 3]
    assert corrected[0]["reason"] == "contacts paused officially"
    assert save(other, "csv", tmp_path / "again.csv").read_text() == exported.read_text()


def test_csv_export_of_one_case(filled: Register) -> None:
    lines = "".join(export(filled, "csv", case="zwolle-lueneburg")).splitlines()
    assert lines[1:] == [
        "zwolle-lueneburg,twinning,open,council,,,1975,,,,,,Hanseatic towns,,"
        "Jumelage Zwolle–Lüneburg,Zwolle; Lüneburg,",
        "zwolle-lueneburg,,reaffirm,council,Zwolle,gemeenteraad Zwolle,2015-09-21,,,,unanimous,"
        ",40 years of friendship,https://example.org/zwolle/2015-09-21,,,",
        'zwolle-lueneburg,,note:visit,,Lüneburg,,2016-05,,,,,,,,,,"Hanseatic days: a Lüneburg '
        "delegation in Zwolle,",
        'with a choir and a brass band"',
    ]


# ---------------------------------------------------------------------------- CloudEvents


def test_every_cloudevent_passes_the_cloudevents_json_reader(filled: Register) -> None:
    from cloudevents.core.formats.json import JSONFormat

    lines = list(export(filled, "cloudevents", source="https://example.org/twinnings"))
    assert len(lines) == len(log(filled))
    reader = JSONFormat()
    events = [reader.read(None, line) for line in lines]  # raises on any invalid event
    raw = [json.loads(line) for line in lines]

    assert len({(e.get_source(), e.get_id()) for e in events}) == len(events)
    assert {e.get_specversion() for e in events} == {"1.0"}
    assert {e.get_source() for e in events} == {"https://example.org/twinnings"}
    types = {e.get_type() for e in events}
    assert types == {
        "org.twinflow.workflow.registered",
        "org.twinflow.case.opened",
        "org.twinflow.case.decided",
        "org.twinflow.case.noted",
        "org.twinflow.case.corrected",
        "org.twinflow.case.retracted",
    }
    history = {h["seq"]: h for h in filled.history("groningen-kaliningrad")}
    (end,) = [
        r
        for r in raw
        if r["subject"] == "groningen-kaliningrad" and r["data"].get("trigger") == "end"
    ]
    assert end["id"] == "groningen-kaliningrad/4"
    assert "time" not in end  # a decision dated to the day has no full timestamp
    assert end["recordedtime"] == history[4]["recorded_at"].replace("+00:00", "Z")
    assert {k: end["data"][k] for k in ("decided_on", "effective_on", "published_on")} == {
        "decided_on": "2022-03-01",
        "effective_on": "2022-03-03",
        "published_on": "2022-03-04",
    }
    assert {k: end["data"][k] for k in ("party", "body", "vote", "reference", "sources")} == {
        "party": "Groningen",
        "body": "council",
        "vote": "35-4",
        "reference": "RB 2022/17",
        "sources": ["https://example.org/groningen/rb-2022-17"],
    }
    suspension = next(r for r in raw if r["id"] == "coevorden-brest/4")
    assert suspension["data"]["decided_on"] == "2022"  # the partial date as the source has it
    timed = {r["type"] for r in raw if "time" in r}
    assert timed == {
        "org.twinflow.workflow.registered",
        "org.twinflow.case.corrected",
        "org.twinflow.case.retracted",
    }
    for r in raw:
        if "time" in r:
            assert r["time"] == r["recordedtime"]


def test_cloudevents_of_one_case_default_to_the_register_as_source(filled: Register) -> None:
    raw = [json.loads(line) for line in export(filled, "cloudevents", case="hoogeveen-gryfino")]
    assert [r["id"] for r in raw] == [
        "hoogeveen-gryfino/1",
        "hoogeveen-gryfino/2",
        "hoogeveen-gryfino/3",
    ]
    name = (
        filled.location.path.stem if filled.location.path else filled.location.url.rsplit("/")[-1]
    )
    assert {r["source"] for r in raw} == {f"urn:twinflow:register:{name}"}


# ---------------------------------------------------------------------------- the commands


def test_export_and_restore_through_the_cli(run: Invoke, filled: Register, tmp_path: Path) -> None:
    backup = tmp_path / "backup.ndjson"
    result = run("export", "-o", str(backup))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == f"exported ndjson to {backup}\n"

    copy = tmp_path / "copy.db"
    restored = CliRunner().invoke(cli, ["--db", str(copy), "restore", str(backup)])
    assert restored.exit_code == 0, restored.output
    assert restored.stdout.startswith("restored backup.ndjson: 18 events of 4 case(s)")
    again = CliRunner().invoke(cli, ["--db", str(copy), "restore", str(backup)])
    assert again.exit_code == 1
    assert again.stderr.startswith(f"Error: the register {copy} already holds events")

    single = run("export", "--case", "zwolle-lueneburg")
    *lines, closing = [json.loads(line) for line in single.stdout.splitlines()]
    assert [line["topic"] for line in lines] == [
        "twinflow:workflow:registered",
        "twinflow:case:opened",
        "twinflow:case:decided",
        "twinflow:case:noted",
    ]
    # one case's export closes with its count (no digest: it is not the whole log) ...
    assert closing == {"end": "twinflow backup", "case": "zwolle-lueneburg", "events": 4}
    # ... and stays restorable, as before the closing line
    extract = tmp_path / "case.ndjson"
    extract.write_text(single.stdout)
    one = tmp_path / "one.db"
    restored = CliRunner().invoke(cli, ["--db", str(one), "restore", str(extract)])
    assert restored.exit_code == 0, restored.output
    assert restored.stdout.startswith("restored case.ndjson: 4 events of 1 case(s)")
    cut = tmp_path / "case-cut.ndjson"
    cut.write_text("".join(single.stdout.splitlines(keepends=True)[:-2]))
    refused = CliRunner().invoke(cli, ["--db", str(tmp_path / "none.db"), "restore", str(cut)])
    assert refused.exit_code == 1
    assert "ends without its closing line: it was cut short" in refused.stderr


def test_a_backup_cut_by_one_line_is_refused_through_the_cli(
    run: Invoke, filled: Register, tmp_path: Path
) -> None:
    backup = tmp_path / "b.ndjson"
    assert run("export", "-o", str(backup)).exit_code == 0
    lines = backup.read_text(encoding="utf-8").splitlines(keepends=True)
    cut = tmp_path / "cut.ndjson"
    cut.write_text("".join(lines[:-1]), encoding="utf-8")  # head -n -1 b.ndjson > cut.ndjson
    copy = tmp_path / "new.db"
    refused = CliRunner().invoke(cli, ["--db", str(copy), "restore", str(cut)])
    assert (refused.exit_code, refused.stdout) == (1, "")
    assert refused.stderr == (
        "Error: cut.ndjson: line 18: the backup ends without its closing line: it was cut "
        "short; restore from a complete backup; nothing was restored\n"
    )
    empty = Register.at(str(copy), create=True)
    try:
        assert log(empty) == []  # nothing written
    finally:
        empty.close()
    restored = CliRunner().invoke(cli, ["--db", str(copy), "restore", str(backup)])
    assert restored.exit_code == 0, restored.output
    again = CliRunner().invoke(cli, ["--db", str(copy), "digest"])
    assert again.stdout.strip() == filled.digest()["digest"]


def test_refused_exports_and_restores_through_the_cli(
    run: Invoke, filled: Register, tmp_path: Path
) -> None:
    target = tmp_path / "out.csv"
    result = run("export", "--case", "nowhere", "-o", str(target))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: unknown case 'nowhere'")
    assert not target.exists()

    broken = tmp_path / "broken.ndjson"
    broken.write_text('{"position": 1, "id": "x"\n')
    copy = tmp_path / "copy.db"
    refused = CliRunner().invoke(cli, ["--db", str(copy), "restore", str(broken)])
    assert refused.exit_code == 1
    assert refused.stderr == (
        "Error: broken.ndjson: line 1: the line is not a complete JSON object (Expecting ',' "
        "delimiter, column 26); nothing was restored\n"
    )
    assert not copy.exists()
