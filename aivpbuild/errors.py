"""One error hierarchy for aivpbuild, and the exit code each kind maps to.

Every error a user can cause is an :class:`AivpError` whose message says what is wrong,
where (file, line, column, field) and how to fix it. The CLI prints the message without a
traceback (unless ``-v``) and exits with :attr:`AivpError.exit_code`.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_TARGET_FAILED = 1
EXIT_USAGE = 2
EXIT_BUDGET = 3
EXIT_INTERRUPTED = 130


class AivpError(Exception):
    """Base class: a problem with a clear message and an exit code."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ManifestError(AivpError):
    """The manifest (or a file it names) is invalid."""


class ConfigError(AivpError):
    """Settings, environment or command-line usage are invalid."""


class GraphError(AivpError):
    """The target graph is invalid (a cycle, an unknown target)."""


class TemplateError(AivpError):
    """A prompt template failed to render."""


class LockedError(AivpError):
    """Another aivpbuild process holds the project lock."""


class BudgetError(AivpError):
    """The budget guard refused the build before anything was spent."""

    exit_code = EXIT_BUDGET


class ProviderError(AivpError):
    """A provider failed a job (the target fails; other targets may continue)."""

    exit_code = EXIT_TARGET_FAILED

    def __init__(self, message: str, *, hint: str | None = None, retryable: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.retryable = retryable


class SubmitUncertain(ProviderError):
    """A paid submit failed after the request may have reached the provider: it may have been
    accepted (and billed). The journal keeps it as "possibly submitted"; never retried blindly."""

    uncertain = True


class MediaError(AivpError):
    """A produced or downloaded media file is unreadable or does not match the request."""

    exit_code = EXIT_TARGET_FAILED


class BuildFailed(AivpError):
    """One or more targets failed."""

    exit_code = EXIT_TARGET_FAILED


class Interrupted(AivpError):
    """The user interrupted the build (Ctrl-C)."""

    exit_code = EXIT_INTERRUPTED
