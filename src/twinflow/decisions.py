"""The fields of a decision or a note as `open`, `decide` and `note` record them, and the
checks they pass before a case is touched: the body that takes a decision, the party it is
about and the fields its workflow requires."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twinflow.dates import PartialDate, parse_date
from twinflow.definitions import Library, Workflow
from twinflow.domain import Case, check_slug
from twinflow.errors import InvalidInput, NotFound, RuleViolation


def check_opening(
    library: Library,
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
) -> tuple[Workflow, list[str], dict[str, Any]]:
    """Check an opening without touching the store (so a refused first `open` creates no
    register): the workflow, the party names and the founding decision."""
    check_slug(slug)
    if not title or not title.strip():
        raise InvalidInput("the title is empty: give --title, e.g. 'Twinning Coevorden–Brest'")
    names = [p.strip() for p in parties]
    if not names or not all(names):
        raise InvalidInput("a case needs at least one party: give --party NAME, once per party")
    if len(set(names)) != len(names):
        raise InvalidInput(f"a party is named twice in {', '.join(names)}: name each once")
    flow = library.get(workflow)
    check_body(flow, by, flow.open_by, "open")
    decision = decision_fields(
        "open",
        by=by,
        party=None,
        on=on,
        effective=effective,
        body_name=body_name,
        reason=reason,
        reference=reference,
        sources=sources,
    )
    check_requires(flow.open_requires, decision, "open")
    return flow, names, decision


def clean_sources(sources: Sequence[str]) -> list[str]:
    return [s.strip() for s in sources if s and s.strip()]


def decision_fields(
    trigger: str,
    *,
    by: str,
    party: str | None,
    on: str,
    effective: str | None,
    published: str | None = None,
    body_name: str | None = None,
    scope: str | None = None,
    vote: str | None = None,
    reason: str | None = None,
    reference: str | None = None,
    sources: Sequence[str] = (),
) -> dict[str, Any]:
    decided = parse_date(on, "--on")
    effective_date: PartialDate | None = parse_date(effective, "--effective") if effective else None
    published_date = parse_date(published, "--published") if published else None
    return {
        "trigger": trigger,
        "party": party,
        "body": by,
        "body_name": body_name or None,
        "decided_on": decided.text,
        "effective_on": effective_date.text if effective_date else None,
        "published_on": published_date.text if published_date else None,
        "scope": scope or None,
        "vote": vote or None,
        "reference": reference or None,
        "reason": reason or None,
        "sources": clean_sources(sources),
    }


def note_fields(
    kind: str, *, on: str, summary: str, party: str | None, sources: Sequence[str]
) -> dict[str, Any]:
    date = parse_date(on, "--on")
    if not summary or not summary.strip():
        raise InvalidInput("the summary is empty: say in --summary what happened")
    return {
        "kind": kind,
        "on": date.text,
        "summary": summary.strip(),
        "party": party,
        "sources": clean_sources(sources),
    }


def check_body(flow: Workflow, by: str, allowed: Sequence[str], verb: str) -> None:
    if by not in flow.body_names:
        raise NotFound(
            f"unknown body kind {by!r} in workflow {flow.name!r} v{flow.version}: known: "
            f"{', '.join(flow.body_names)} (to {verb}: {', '.join(allowed) or 'none'})"
        )
    if by not in allowed:
        # `by` may be empty: a decision a workflow keeps but no body may take (lint warns)
        raise RuleViolation(
            f"body kind {by!r} may not {verb} a {flow.name!r} case: allowed: "
            f"{', '.join(allowed) or 'none'}"
        )


def check_party(case: Case, party: str) -> None:
    if party not in case.parties:
        raise RuleViolation(
            f"{party!r} is not a party to case {case.slug!r}: parties: {', '.join(case.parties)}"
        )


def check_requires(required: Sequence[str], decision: dict[str, Any], trigger: str) -> None:
    missing = [name for name in required if not decision.get(name)]
    if missing:
        options = ", ".join(
            "--"
            + {
                "reference": "ref",
                "published_on": "published",
                "body_name": "body-name",
                "sources": "source",
            }.get(m, m)
            for m in missing
        )
        raise RuleViolation(f"a {trigger!r} decision requires {', '.join(missing)}: give {options}")
