"""The errors twinflow raises; only the CLI turns them into exit codes."""

from __future__ import annotations


class TwinflowError(Exception):
    """Base of every error twinflow reports to a user (exit code 1)."""

    exit_code = 1


class InvalidInput(TwinflowError):
    """A value given by the user is malformed: a date, a slug, an empty title (exit code 2)."""

    exit_code = 2


class NotFound(TwinflowError):
    """A named case, workflow, trigger or event does not exist."""


class RuleViolation(TwinflowError):
    """A decision breaks the workflow's rules or makes the timeline illegal."""


class WorkflowFileError(TwinflowError):
    """A workflow definition file is malformed, invalid or changed without a version bump."""


class StorageError(TwinflowError):
    """The database cannot be used: not writable, not a twinflow database, locked or corrupt."""


class MissingProgram(TwinflowError):
    """An outside program an output needs (graphviz's `dot`) is not installed."""


class ConflictError(TwinflowError):
    """Another writer changed the same case and the decision no longer holds."""


class BadFile(TwinflowError):
    """A file to import or restore has bad rows or lines (all listed); nothing was written."""

    def __init__(self, message: str, problems: list[object] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])
