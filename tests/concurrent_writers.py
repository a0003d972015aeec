"""A writer process for the concurrency tests: opens its own Register and records a fixed
sequence of notes and decisions, each tagged so the test can find it in the store."""

from __future__ import annotations

import traceback
from typing import Any

from twinflow.application import Register
from twinflow.errors import ConflictError, RuleViolation, TwinflowError

PARTIES = ("Coevorden", "Brest")


def plan(writer: int, count: int) -> list[tuple[str, str]]:
    """(tag, what) for each event: mostly notes and reaffirmations, which stay legal in any
    order, and a suspension and a resumption in every ten, which may not."""
    steps = []
    for n in range(count):
        what = {3: "suspend", 7: "resume"}.get(n % 10, "note" if n % 2 == 0 else "reaffirm")
        steps.append((f"w{writer}-{n}", what))
    return steps


def record(register: Register, slug: str, tag: str, what: str, actor: str) -> int:
    if what == "note":
        result = register.note(
            slug, "letter", on="2024", summary=tag, party=PARTIES[0], actor=actor
        )
    else:
        result = register.decide(
            slug, what, by="council", party=PARTIES[0], on="2024", reason=tag, actor=actor
        )
    return int(result["seq"])


def open_case(register: Register, slug: str, actor: str) -> None:
    register.open_case(
        slug,
        workflow="twinning",
        title=f"Twinning {slug}",
        parties=list(PARTIES),
        by="council",
        on="2000",
        reason=f"{slug}-open",
        actor=actor,
    )


def run(db: str, slug: str, writer: int, count: int, opens: bool, barrier: Any, out: Any) -> None:
    """Record `count` events on `slug` (opening it first when `opens`), starting with the
    other writers; put one outcome per tag on `out`: ok / refused (a rule) / conflict
    (another writer) / error (any other TwinflowError) / crash (anything else)."""
    try:
        out.put(outcomes(db, slug, writer, count, opens, barrier))
    except BaseException:
        out.put([(f"w{writer}", "crash", traceback.format_exc())])
        raise


def outcomes(
    db: str, slug: str, writer: int, count: int, opens: bool, barrier: Any
) -> list[tuple[str, str, str]]:
    register = Register.at(db, create=True)
    actor = f"clerk-{writer}"
    found = []
    barrier.wait(timeout=120)
    steps = plan(writer, count)
    if opens:
        open_case(register, slug, actor)
        found.append((f"{slug}-open", "ok", "1"))
        steps = steps[1:]
    for tag, what in steps:
        try:
            seq = record(register, slug, tag, what, actor)
        except ConflictError as error:
            found.append((tag, "conflict", str(error)))
        except RuleViolation as error:
            found.append((tag, "refused", str(error)))
        except TwinflowError as error:
            found.append((tag, "error", f"{type(error).__name__}: {error}"))
        else:
            found.append((tag, "ok", str(seq)))
    register.close()
    return found
