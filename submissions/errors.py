"""Errors of the submissions component (vendor packages, manifests, field values).

::

    BrokerageError
    └── SubmissionError        anything wrong with a broker package or a value for one of its fields
        ├── ManifestError      the manifest is missing, is not JSON, or breaks the schema or the
        │                      rules beside it; ``problems`` lists every one, each naming its path
        ├── FieldError         a service field value does not fit its field definition; the message
        │                      starts with the field's label (the API answers 400 with it)
        ├── PackageError       a package folder or archive cannot be accepted: path traversal,
        │                      absolute path, link or device, too big, too many files, not an
        │                      archive, restricted code that does not compile (``problems``)
        ├── VersionError       a version number repeats or goes backwards, or the broker name
        │                      belongs to another vendor or to the platform
        ├── TransitionError    a lifecycle move the transition table does not allow (acting on
        │                      a withdrawn or decided submission)
        ├── NotAllowedError    the caller may not make this move (a vendor deciding on a
        │                      submission, anyone reviewing their own, another vendor withdrawing)
        ├── ArtifactError      the artifact store has no such artifact, or its bytes do not match
        │                      their digest
        ├── BundleMissingError the files of a broker version cannot be found (built-in folder or
        │                      artifact gone)
        └── ApiCallError       the CLI's call to the platform API failed: the platform's error
                               (message and problems), or no answer
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from brokerage.core.errors import BrokerageError


class SubmissionError(BrokerageError):
    """Base class of the submissions component's errors."""


@dataclass(frozen=True)
class ManifestProblem:
    """One thing wrong with a manifest: where (``fields[2].type``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ManifestError(SubmissionError):
    """Raised when a manifest cannot be loaded or does not validate; carries every problem found."""

    def __init__(self, problems: Sequence[ManifestProblem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        count = len(self.problems)
        super().__init__(f"invalid manifest ({count} problem{'s' * (count != 1)}):\n{lines}")

    @property
    def messages(self) -> list[str]:
        """Each problem as ``"<path>: <message>"``."""
        return [str(problem) for problem in self.problems]


class FieldError(SubmissionError):
    """Raised when a raw value cannot become a field's value; the message names the label."""

    def __init__(self, label: str, problem: str) -> None:
        self.label = label
        self.problem = problem
        super().__init__(f"{label}: {problem}")


class PackageError(SubmissionError):
    """Raised when a package cannot be read or accepted; ``problems`` lists each finding."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        self.problems = list(problems)
        detail = "".join(f"\n  {problem}" for problem in self.problems)
        super().__init__(message + detail)
        self.summary = message


class VersionError(SubmissionError):
    """Raised when a submitted version does not come after every earlier version of its broker,
    or when the broker's name is not the submitter's to use."""


class TransitionError(SubmissionError):
    """Raised when a submission cannot move from its state to the one asked for."""


class NotAllowedError(SubmissionError):
    """Raised when the caller's role or relation to a submission does not permit an action."""


class ArtifactError(SubmissionError):
    """Raised when a stored artifact is missing or corrupt."""


class ApiCallError(SubmissionError):
    """The platform answered with an error (its message and problems), or could not be reached."""

    def __init__(self, status: int | None, message: str, problems: list[str] | None = None) -> None:
        self.status = status
        self.problems = problems or []
        lines = "".join(f"\n  {p}" for p in self.problems)
        prefix = f"HTTP {status}: " if status else ""
        super().__init__(f"{prefix}{message}{lines}")


class BundleMissingError(SubmissionError):
    """The files of a broker version cannot be found."""
