"""Tampering with a real SQLite register behind twinflow's back, with the raw sqlite3 module:
every edit, swap, deletion, truncation, reordering and forgery is caught by `verify` or
`verify --digest`, which name the event."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.conftest import fresh_postgres_url
from twinflow import demo
from twinflow.application import Register
from twinflow.cli import cli
from twinflow.domain import case_id
from twinflow.storage import APPEND_ONLY, guard_statements

# The demo story: position 1 is the workflow definition, positions 2-7 are coevorden-brest
# #1 (opened), #2-#4 (notes), #5 (suspend 2022), #6 (freeze); position 8 is a-b #1.
CASE = demo.CASE
BROKEN = "Error: the register {db} does not verify: {what}; its stored records were changed " \
    "outside twinflow: restore it from a backup\n"
HASH = "hash mismatch: its content was edited (or the event forged)"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "register.db"
    register = Register.at(str(path), create=True)
    demo.record(register, actor="clerk-a")
    register.open_case("a-b", workflow="twinning", title="A–B", parties=["A", "B"],
                       by="council", on="2000", actor="clerk-a")
    register.views.catch_up()  # as after any `twinflow list` or `audit`
    register.close()
    yield path


def twinflow(db: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), *args])


def tamper(db: Path, statement: str, *params: object) -> None:
    """What someone with the file and sqlite3 could do: drop the guards, change the table,
    and put the guards back so that nothing looks amiss."""
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("DROP TRIGGER stored_events_no_update")
        conn.execute("DROP TRIGGER stored_events_no_delete")
        conn.execute(statement, params)
        for guard in guard_statements("sqlite", ["stored_events"]):
            conn.execute(guard)
        conn.commit()


def row(db: Path, rowid: int) -> tuple[str, int, str, bytes]:
    [found] = [r[1:] for r in records(db) if r[0] == rowid]
    return found


def records(db: Path) -> list[tuple[int, str, int, str, bytes]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT rowid, originator_id, originator_version, topic, state "
                            "FROM stored_events ORDER BY rowid").fetchall()


def digest(db: Path) -> str:
    result = twinflow(db, "digest")
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def test_an_untouched_register_verifies(db: Path) -> None:
    result = twinflow(db, "verify", "--digest", digest(db))
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == ("verified 8 events in 2 cases and 1 workflow: all chains hold\n"
                             "the first 8 events match the published digest\n")


def test_one_byte_edited_in_a_stored_payload_is_named(db: Path) -> None:
    published = digest(db)
    state = row(db, 6)[3]
    assert state.count(b'"2022"') == 1
    tamper(db, "UPDATE stored_events SET state = ? WHERE rowid = 6",
           state.replace(b'"2022"', b'"2021"'))
    assert json.loads(twinflow(db, "status", CASE, "--format", "json").stdout)  # still reads

    result = twinflow(db, "verify")
    assert result.exit_code == 1
    assert result.stdout == f"{CASE} #5 (position 6): {HASH}\n"
    assert result.stderr == BROKEN.format(db=db, what="1 broken event")
    result = twinflow(db, "verify", "--digest", published)
    assert result.stdout.splitlines()[1] == (
        f"digest {published[:14]}...: the first 8 events no longer match the digest: an event "
        f"among them was edited, deleted, reordered or inserted; the first broken event is at "
        f"position 6 ({CASE} #5)")


def test_verify_case_checks_only_that_case(db: Path) -> None:
    state = row(db, 6)[3]
    tamper(db, "UPDATE stored_events SET state = ? WHERE rowid = 6",
           state.replace(b'"2022"', b'"2021"'))
    result = twinflow(db, "verify", "--case", "a-b")
    assert (result.exit_code, result.stdout) == (
        0, "verified 1 event in case a-b: all chains hold\n")
    result = twinflow(db, "verify", "--case", CASE)
    assert (result.exit_code, result.stdout) == (1, f"{CASE} #5: {HASH}\n")


def test_an_edited_workflow_definition_is_named(db: Path) -> None:
    state = row(db, 1)[3]
    assert state.count(b'"requires":["reason"]') == 2
    tamper(db, "UPDATE stored_events SET state = ? WHERE rowid = 1",
           state.replace(b'"requires":["reason"]', b'"requires":[]', 1))
    result = twinflow(db, "verify")
    assert result.exit_code == 1
    assert result.stdout == (
        f"workflow twinning v1 #1 (position 1): {HASH}; the stored workflow definition does "
        "not match its digest\n")


def test_a_large_register_shows_a_progress_bar(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from twinflow import cli_audit

    monkeypatch.setattr(cli_audit, "LARGE", 2)
    result = twinflow(db, "verify")
    assert result.exit_code == 0
    assert "verifying" in result.stderr and "verifying" not in result.stdout


def test_a_payload_that_no_longer_decodes_is_named(db: Path) -> None:
    state = row(db, 4)[3]
    tamper(db, "UPDATE stored_events SET state = ? WHERE rowid = 4", b"[" + state[1:])
    result = twinflow(db, "verify")
    assert result.exit_code == 1
    assert result.stdout.startswith(
        f"{CASE} #3 (position 4): content edited: the stored record cannot be decoded (")
    assert len(result.stdout.splitlines()) == 1  # #4 is not blamed for its predecessor


def test_two_swapped_payloads_are_both_named(db: Path) -> None:
    second, third = row(db, 3)[3], row(db, 4)[3]
    tamper(db, "UPDATE stored_events SET state = CASE rowid WHEN 3 THEN ? ELSE ? END "
               "WHERE rowid IN (3, 4)", third, second)
    result = twinflow(db, "verify")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{CASE} #2 (position 3): {HASH}; prev_hash mismatch: it does not point at #1: an event "
        "before it is missing, reordered or rewritten",
        f"{CASE} #3 (position 4): {HASH}",  # #4 still points at the original #3: not blamed
    ]
    assert result.stderr == BROKEN.format(db=db, what="2 broken events")


def test_a_deleted_event_is_named_by_the_gap_it_leaves(db: Path) -> None:
    published = digest(db)
    tamper(db, "DELETE FROM stored_events WHERE rowid = 4")
    result = twinflow(db, "verify", "--digest", published)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{CASE} #4 (position 4): seq gap: #3 missing before it; prev_hash mismatch: it does "
        "not point at #2: an event before it is missing, reordered or rewritten",
        f"digest {published[:14]}...: the log has only 7 events, but the digest covers 8: at "
        "least 1 of them was deleted; first difference at position 4: coevorden-brest #3, "
        "which the read model saw there, is no longer there (deleted or moved)",
    ]
    assert result.stderr == BROKEN.format(
        db=db, what="1 broken event and the published digest no longer holds")


GONE = "recorded, but missing from the log: events were deleted"


def test_the_last_event_of_a_case_deleted_is_caught_by_the_digest(db: Path) -> None:
    published = digest(db)
    tamper(db, "DELETE FROM stored_events WHERE rowid = 7")  # coevorden-brest #6, not the tail
    result = twinflow(db, "verify")  # every chain still holds, but the read model saw #6
    assert result.exit_code == 1
    assert result.stdout == f"case '{CASE}' #6 (position 7): {GONE}\n"
    assert result.stderr == BROKEN.format(db=db, what="1 broken event")
    result = twinflow(db, "verify", "--digest", published)
    assert result.exit_code == 1
    assert result.stdout == (
        f"case '{CASE}' #6 (position 7): {GONE}\n"
        f"digest {published[:14]}...: the log has only 7 events, but the digest covers 8: at "
        "least 1 of them was deleted; first difference at position 7: coevorden-brest #6, "
        "which the read model saw there, is no longer there (deleted or moved)\n")


def test_a_truncated_tail_is_caught_by_the_digest(db: Path) -> None:
    published = digest(db)
    tamper(db, "DELETE FROM stored_events WHERE rowid >= 7")
    gone = [f"case '{CASE}' #6 (position 7): {GONE}", f"case 'a-b' #1 (position 8): {GONE}"]
    result = twinflow(db, "verify")
    assert (result.exit_code, result.stdout.splitlines()) == (1, gone)
    result = twinflow(db, "verify", "--digest", published)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        *gone,
        f"digest {published[:14]}...: the log has only 6 events, but the digest covers 8: at "
        "least 2 of them were deleted; first difference at position 7: coevorden-brest #6, "
        "which the read model saw there, is no longer there (deleted or moved)"]
    assert result.stderr == BROKEN.format(
        db=db, what="2 broken events and the published digest no longer holds")


def test_a_deleted_tail_event_is_named_and_the_guards_are_not_put_back(db: Path) -> None:
    """The repro: drop the delete guard, delete the last event; no gap and no digest tells,
    but the read models saw it (its position, the case's last seq, its audit row)."""
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("DROP TRIGGER stored_events_no_delete")
        conn.execute("DELETE FROM stored_events WHERE rowid = (SELECT MAX(rowid) FROM "
                     "stored_events)")
        conn.commit()
    before = records(db)
    assert len(before) == 7
    for args in (("verify",), ("verify", "--reinstall-guards")):
        result = twinflow(db, *args)
        assert result.exit_code == 1
        assert result.stdout.splitlines() == [
            f"case 'a-b' #1 (position 8): {GONE}",
            "register: append-only guards missing (stored_events_no_delete): the database no "
            "longer refuses UPDATE and DELETE"]
        assert result.stderr == BROKEN.format(db=db, what="1 broken event")
    assert twinflow(db, "status", CASE).exit_code == 1  # the guards were not put back
    with closing(sqlite3.connect(db)) as conn:
        triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE "
                                                "type = 'trigger'")}
    assert "stored_events_no_delete" not in triggers
    assert records(db) == before
    result = twinflow(db, "verify", "--case", "a-b")  # every event of the case is gone
    assert (result.exit_code, result.stdout.splitlines()[0]) == (
        1, f"case 'a-b' #1 (position 8): {GONE}")
    assert twinflow(db, "verify", "--case", CASE).exit_code == 1  # its guards are still missing


def test_verify_case_on_an_unguarded_register_says_only_that_case_was_checked(
    db: Path,
) -> None:
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("DROP TRIGGER stored_events_no_delete")
        conn.commit()
    result = twinflow(db, "verify", "--case", CASE)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == "verified 6 events in case coevorden-brest: all " \
        "chains hold"
    assert result.stderr == (
        f"Error: the register {db} has lost its append-only guards; only case {CASE} was "
        "checked, and its chain holds: check the whole log and put the guards back with "
        "`twinflow verify --reinstall-guards` (without --case)\n")


def test_guards_are_not_reinstalled_after_checking_one_case_only(db: Path) -> None:
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("DROP TRIGGER stored_events_no_delete")
        conn.commit()
    result = twinflow(db, "verify", "--case", CASE, "--reinstall-guards")
    assert result.exit_code == 1
    assert "only case coevorden-brest was checked" in result.stderr
    with closing(sqlite3.connect(db)) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "stored_events_no_delete" not in names


def test_an_event_the_views_saw_past_the_log_is_named_by_its_position(db: Path) -> None:
    with closing(sqlite3.connect(db)) as conn:  # as after a deleted workflow registration
        conn.execute("UPDATE twinflow_position SET position = 9 WHERE name = 'cases'")
        conn.commit()
    result = twinflow(db, "verify")
    assert result.exit_code == 1
    assert result.stdout == f"an event (position 9): {GONE}\n"


def test_a_reordered_log_is_caught_by_the_digest(db: Path) -> None:
    published = digest(db)
    first = row(db, 1)  # the workflow definition, moved to the end of the log
    tamper(db, "DELETE FROM stored_events WHERE rowid = 1")
    tamper(db, "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
               "VALUES (?, ?, ?, ?)", *first)
    assert twinflow(db, "verify").exit_code == 0
    result = twinflow(db, "verify", "--digest", published)
    assert result.exit_code == 1
    assert result.stdout == (
        f"digest {published[:14]}...: the first 8 events no longer match the digest: an event "
        "among them was edited, deleted, reordered or inserted\n")


def test_a_forged_event_with_a_wrong_hash_is_named(db: Path) -> None:
    originator, _, _, state = row(db, 7)  # coevorden-brest #6, the freeze
    forged = json.loads(state)
    forged["decision"]["trigger"] = "resume"
    forged["decision"]["decided_on"] = "2025"
    forged["prev_hash"] = forged["hash"]
    tamper(db, "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
               "VALUES (?, 7, 'twinflow:case:decided', ?)", originator, json.dumps(forged).encode())
    result = twinflow(db, "verify")
    assert result.exit_code == 1
    assert result.stdout == f"{CASE} #7 (position 9): {HASH}\n"


def test_a_forged_event_of_an_unknown_kind_is_named_without_being_decoded(db: Path) -> None:
    tamper(db, "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
               "VALUES (?, 7, 'os:system', ?)", case_id(CASE).hex, b"{}")
    result = twinflow(db, "verify", "--case", CASE)
    assert result.exit_code == 1
    assert result.stdout == f"{CASE} #7: forged: 'os:system' is not a twinflow event type\n"


def test_appending_events_keeps_an_earlier_digest_valid(db: Path) -> None:
    published = digest(db)
    result = twinflow(db, "--actor", "clerk-b", "correct", CASE, "5", "--effective", "2022-03",
                      "--why", "the minutes")
    assert result.exit_code == 0, result.stderr
    result = twinflow(db, "verify", "--digest", published)
    assert (result.exit_code, result.stdout.splitlines()) == (0, [
        "verified 9 events in 2 cases and 1 workflow: all chains hold",
        "the first 8 events match the published digest"])
    assert digest(db).startswith("9:") and digest(db) != published


def test_a_raw_update_or_delete_is_refused_as_append_only(db: Path) -> None:
    with closing(sqlite3.connect(db)) as conn:
        for statement in ("UPDATE stored_events SET topic = 'x' WHERE rowid = 2",
                          "DELETE FROM stored_events WHERE rowid = 8"):
            with pytest.raises(sqlite3.IntegrityError) as refused:
                conn.execute(statement)
            assert str(refused.value) == APPEND_ONLY
    assert twinflow(db, "verify").exit_code == 0


def test_a_register_whose_guards_were_dropped_is_refused_until_verified(db: Path) -> None:
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("DROP TRIGGER stored_events_no_delete")
        conn.commit()
    before = records(db)
    result = twinflow(db, "note", CASE, "visit", "--on", "2023", "--summary", "x")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"Error: the register {db} has lost its append-only guard (stored_events_no_delete): "
        "the database was changed outside twinflow and its records may have been edited; run "
        "`twinflow verify` to check them, and `twinflow verify --reinstall-guards` to put the "
        "guards back once they hold\n")
    assert twinflow(db, "status", CASE).exit_code == 1
    assert records(db) == before  # nothing written

    result = twinflow(db, "verify")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        "register: append-only guards missing (stored_events_no_delete): the database no longer "
        "refuses UPDATE and DELETE")
    assert result.stderr == (f"Error: the register {db} has lost its append-only guards; its "
                             "chains hold, so put the guards back with `twinflow verify "
                             "--reinstall-guards`\n")
    result = twinflow(db, "verify", "--reinstall-guards")
    assert result.exit_code == 0
    assert result.stderr == "reinstalled the append-only guards: stored_events_no_delete\n"
    assert twinflow(db, "status", CASE).exit_code == 0
    assert twinflow(db, "verify").stdout == (
        "verified 8 events in 2 cases and 1 workflow: all chains hold\n")


def test_guards_are_not_put_back_over_a_broken_chain(db: Path) -> None:
    state = row(db, 3)[3]
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("DROP TRIGGER stored_events_no_update")
        conn.execute("UPDATE stored_events SET state = ? WHERE rowid = 3",
                     (state.replace(b"visit", b"vizit"),))
        conn.commit()
    result = twinflow(db, "verify", "--reinstall-guards")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == f"{CASE} #2 (position 3): {HASH}"
    assert result.stderr == BROKEN.format(db=db, what="1 broken event")
    assert twinflow(db, "status", CASE).exit_code == 1  # still refused


def test_a_malformed_digest_is_a_usage_error(db: Path) -> None:
    result = twinflow(db, "verify", "--digest", "8:abc")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "Error: digest '8:abc' is not POSITION:HASH as printed by `twinflow digest` (a count of "
        "events, a colon and 64 hexadecimal digits)\n")


def test_verify_of_an_unknown_case_is_refused(db: Path) -> None:
    result = twinflow(db, "verify", "--case", "nobody-here")
    assert (result.exit_code, result.stderr) == (
        1, "Error: unknown case 'nobody-here': see `twinflow list` for the cases\n")



@pytest.fixture
def pg(postgres_admin: object) -> Iterator[str]:
    register_url = fresh_postgres_url(postgres_admin)
    url = next(register_url)
    register = Register.at(url, create=True)
    demo.record(register, actor="clerk-a")
    register.close()
    yield url
    next(register_url, None)


def test_on_postgres_a_disabled_guard_is_refused_and_an_edit_named(pg: str) -> None:
    import psycopg

    with psycopg.connect(pg, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.RaiseException, match=APPEND_ONLY):
            conn.execute("DELETE FROM twinflow_events")
        conn.execute("ALTER TABLE twinflow_events DISABLE TRIGGER twinflow_events_append_only")
        conn.execute(
            "UPDATE twinflow_events SET state = convert_to(replace(convert_from(state, 'UTF8'), "
            "'\"2022\"', '\"2021\"'), 'UTF8') WHERE topic = 'twinflow:case:decided' "
            "AND originator_version = 5")
    result = CliRunner().invoke(cli, ["--db", pg, "status", CASE])
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: the register {pg} has lost its append-only guard (twinflow_events_append_only)")
    result = CliRunner().invoke(cli, ["--db", pg, "verify"])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{CASE} #5 (position 6): {HASH}",
        "register: append-only guards missing (twinflow_events_append_only): the database no "
        "longer refuses UPDATE and DELETE",
    ]
