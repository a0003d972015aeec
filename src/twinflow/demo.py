"""The seed story: the twinning of Coevorden (NL) and Brest (Belarus), recorded and replayed."""

from __future__ import annotations

from typing import Any

from twinflow import languages
from twinflow.application import Register
from twinflow.definitions import Library
from twinflow.output import table

CASE = "coevorden-brest"
SOURCE = "https://www.coevorden.nl"

OPENING: dict[str, Any] = dict(
    workflow="twinning",
    title="Twinning Coevorden–Brest",
    parties=["Coevorden", "Brest"],
    by="council",
    on="2000",
    reason="economic and logistic ties between both towns",
)
STORY: list[tuple[str, str, dict[str, Any]]] = [
    (
        "note",
        "visit",
        dict(
            on="2019",
            party="Coevorden",
            summary="A Coevorden delegation visits Brest for its 1000th anniversary",
        ),
    ),
    (
        "note",
        "letter",
        dict(
            on="2020",
            party="Coevorden",
            summary="Relationship disturbed after the Belarus elections; "
            "the mayor writes on human rights",
        ),
    ),
    (
        "note",
        "letter",
        dict(
            on="2021",
            party="Coevorden",
            summary="Council members write letters to political prisoners in Brest",
        ),
    ),
    (
        "decide",
        "suspend",
        dict(
            party="Brest",
            by="executive",
            on="2022",
            body_name="Brest City Executive Committee",
            reason="unilateral suspension after Coevorden's solidarity actions",
        ),
    ),
    (
        "decide",
        "freeze",
        dict(
            party="Coevorden",
            by="executive",
            on="2024-03",
            body_name="college van B&W Coevorden",
            scope="formal contacts; informal contacts on human rights stay supported",
            reason="formal contacts with Brest stop after the 2020 elections "
            "and Brest's suspension",
            sources=[SOURCE],
        ),
    ),
]
QUESTIONS = (None, "2021-06-01", "2022-06-01")


def record(register: Register, actor: str = "demo") -> None:
    register.open_case(CASE, actor=actor, **OPENING)
    for command, name, fields in STORY:
        if command == "note":
            register.note(CASE, name, actor=actor, **fields)
        else:
            register.decide(CASE, name, actor=actor, **fields)


def run(path: str, workflows: str | None = None, lang: str = "en") -> str:
    """Record the story in a new register at `path`; the replay, labelled in `lang`."""
    flow = Library.from_env(workflows).get(OPENING["workflow"])
    languages.check(lang, [flow])  # before the new file is made
    register = Register.at(path, workflows, create=True)
    try:
        record(register)
        rows = languages.history_table(register.history(CASE), flow, lang)
        lines = [
            f"Recorded the Coevorden–Brest story in {path}.",
            "",
            table(
                [{**r, "what": r["reason"] or r["summary"]} for r in rows],
                ("seq", "effective_on", "kind", "trigger", "party", "state_after", "what"),
            ),
            "",
        ]
        for as_of in QUESTIONS:
            status = register.status(CASE, as_of=as_of, lang=lang)
            state = flow.state_label(status["state"], lang) if status["state"] else "not open"
            if not status["certain"]:
                possible = [
                    flow.state_label(s, lang) if s else "not open" for s in status["possible"]
                ]
                state = f"{state} (uncertain: {' or '.join(possible)}; {status['note']})"
            lines.append(f"status as of {status['as_of']}: {state}")
        lines += ["", f"Try: twinflow --db {path} status {CASE} --as-of 2022-06-01"]
        return "\n".join(lines)
    finally:
        register.close()
