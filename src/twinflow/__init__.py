"""twinflow: an event-sourced register of formal decisions."""

from __future__ import annotations

__version__ = "0.1.0"
