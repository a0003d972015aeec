"""`workflows validate` warns, besides listing defects, about a non-final state no decision
leads out of, a decision no body kind may take, and a state only reachable through a final
one; warnings fail only with --strict."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from tests.conftest import Invoke
from twinflow.cli import cli
from twinflow.definitions import bundled_dir
from twinflow.lint import lint_file

LINT = Path(__file__).parent / "fixtures" / "workflows" / "lint"
STUCK, GATED = LINT / "stuck.yaml", LINT / "gated.yaml"
DEAD_END = (
    f"Warning: {STUCK}:9: states[1]: 'paused' is not final, but no decision leads out of it: a "
    "case there is stuck; add a transition from it, or mark it `final: true`"
)
NOBODY = (
    f"Warning: {STUCK}:26: transitions[2].by: no body kind may take 'end' (its `by` is empty): "
    "list the kinds of body that may, or remove the decision"
)


def validate(*args: str) -> Result:
    return CliRunner().invoke(cli, ["workflows", "validate", *args])


def test_warnings_do_not_fail_validation() -> None:
    result = validate(str(STUCK))
    assert result.exit_code == 0
    assert result.stdout == f"{STUCK}: valid, 2 warning(s)\n"
    assert result.stderr.splitlines() == [DEAD_END, NOBODY]


def test_strict_fails_on_warnings() -> None:
    result = validate("--strict", str(STUCK))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [DEAD_END, NOBODY,
                                          "1 of 1 file(s) have warnings (--strict)"]


def test_a_state_behind_a_final_one_is_named_beside_the_error() -> None:
    result = validate(str(GATED), str(STUCK))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"Error: {GATED}:20: transitions[1].source[0]: 'ended' is final: no transition may "
        "leave it; remove it from source or drop `final: true`",
        f"Warning: {GATED}:11: states[2]: 'reopened' can only be reached through the final "
        "state 'ended', which no decision may leave: a case never gets there; drop "
        "`final: true` there, or add another way in",
        DEAD_END,
        NOBODY,
        "1 of 2 file(s) have defects",
    ]
    assert result.stdout == f"{STUCK}: valid, 2 warning(s)\n"


def test_the_bundled_workflows_have_no_warnings() -> None:
    files = sorted(bundled_dir().glob("*.yaml"))
    assert {f.stem for f in files} >= {"twinning", "motion", "grant"}
    result = validate("--strict", *map(str, files))
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == "".join(f"{f}: valid\n" for f in files)


def test_a_reaffirmation_alone_does_not_lead_out_of_a_state(tmp_path: Path) -> None:
    text = STUCK.read_text()
    assert [w.place for w in lint_file(STUCK)] == ["states[1]", "transitions[2].by"]
    fixed = tmp_path / "stuck.yaml"
    fixed.write_text(text.replace("    source: [active]\n    dest: ended\n    by: []",
                                  "    source: [active, paused]\n    dest: ended\n"
                                  "    by: [council]"))
    assert lint_file(fixed) == []


def test_unreadable_files_get_errors_not_warnings(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    assert lint_file(broken) == []
    assert lint_file(tmp_path / "missing.yaml") == []


def test_a_decision_nobody_may_take_is_refused_saying_so(run: Invoke) -> None:
    opened = run("--workflows", str(LINT), "open", "x", "--workflow", "stuck", "--title", "X",
                 "--party", "A", "--by", "council", "--on", "2000")
    assert opened.exit_code == 0, opened.stderr
    result = run("--workflows", str(LINT), "decide", "x", "end", "--party", "A", "--by",
                 "council", "--on", "2001")
    assert result.exit_code == 1
    assert result.stderr == "Error: body kind 'council' may not end a 'stuck' case: allowed: " \
                            "none\n"
