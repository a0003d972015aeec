"""Cases followed along the global event order while the read models catch up: each event read
from the log is applied to the case it belongs to, so a catch-up decodes every event once
instead of loading every changed case again from the store."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from uuid import UUID

from twinflow.domain import Case, replay

CACHED = 2000  # cases kept between batches: bounds memory on registers of any size


class Followed:
    """The latest known version of recently changed cases."""

    def __init__(self, load: Callable[[UUID, int], Case], size: int = CACHED) -> None:
        self._load = load  # a case from the store, at a version
        self._size = size
        self._cases: OrderedDict[UUID, Case] = OrderedDict()

    def advance(self, events: Iterable[Case.Event]) -> dict[UUID, Case]:
        """Apply the events (in log order) and return every case they changed, in order."""
        grouped: dict[UUID, list[Case.Event]] = {}
        for event in events:
            grouped.setdefault(event.originator_id, []).append(event)
        changed: dict[UUID, Case] = {}
        for case_id, case_events in grouped.items():
            first = case_events[0].originator_version
            case = self._cases.pop(case_id, None)
            if case is not None and case.version == first - 1:
                case = replay(case, case_events)
            elif first == Case.INITIAL_VERSION:
                case = replay(None, case_events)
            else:  # the catch-up started in the middle of this case, or it was evicted
                case = self._load(case_id, case_events[-1].originator_version)
            self._cases[case_id] = changed[case_id] = case
            while len(self._cases) > self._size:
                self._cases.popitem(last=False)
        return changed
