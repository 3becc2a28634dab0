"""One error family for the whole plugin, so callers can tell *whose* mistake an error is.

    UserLMPluginError                  every error the plugin raises on purpose
    ├── ConfigError (ValueError)       the user's input: a -T/-M/-S value, a preset, a sample's metadata,
    │   │                              a missing role, a model folder that is not there. Fix the input.
    │   ├── UsageError                 ...found before any model loads; printed by Inspect as one line
    │   ├── IntentError                the User LM got no usable intent (system message)
    │   └── ModelLoadError             weights or tokenizer cannot be loaded from what the user named
    ├── MissingDependencyError         an optional extra is not installed ("pip install ...")
    └── BackendError (RuntimeError)    the model backend failed, not the input
        ├── BackendUnavailableError    nothing answers (dead server); not retried
        ├── RetryableBackendError      may heal (429, 5xx, timeouts); Inspect retries it
        ├── UpstreamRequestError       an upstream server rejected a request we built (4xx)
        └── RedactedError              a library's error whose text held a secret, scrubbed (providers/scrub.py)

`ConfigError` subclasses `ValueError` so code written against round-1 behaviour (`except ValueError`) keeps working.
`serve` maps only this family to HTTP statuses (`ConfigError` -> 400, `BackendUnavailableError`/`BackendError` ->
502/503); anything else is a bug and becomes a 500 in OpenAI's error shape.

At task-construction time (before any model loads) user mistakes are raised as `UsageError`, a `ConfigError` that is
also Inspect's `PrerequisiteError`, so `inspect eval` prints the one-line message instead of a traceback.
"""

from __future__ import annotations

from typing import Literal

from ._inspect_compat import PrerequisiteError


class UserLMPluginError(Exception):
    """Base of every error the plugin raises on purpose."""


class ConfigError(UserLMPluginError, ValueError):
    """The user's input is wrong (an argument, a preset, sample metadata, a role); the message names the field and
    the fix."""


class IntentError(ConfigError):
    """The User LM's input carries no usable intent (the first message must be a system message with text)."""


class ModelLoadError(ConfigError):
    """The model named by the user could not be loaded; the message says why and what to do."""


class MissingDependencyError(UserLMPluginError, ImportError):
    """An optional dependency (an extra) is not installed; the message gives the `pip install` line."""


class BackendError(UserLMPluginError, RuntimeError):
    """The model backend (a server, the local engine) failed while the input was fine."""


class BackendUnavailableError(BackendError):
    """Nothing answers at the backend's address: not retried, so the sample fails clearly instead of hanging."""


class RetryableBackendError(BackendError):
    """A failure that may heal (rate limit, 5xx, timeout, dropped connection): Inspect retries it."""

    def __init__(
        self, message: str, kind: Literal["rate_limit", "transient"], retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


class UpstreamRequestError(BackendError):
    """An upstream server rejected a request the plugin built (a 4xx other than 408/429): usually a configuration
    problem (wrong served model name, unsupported parameter) that the message names."""


class RedactedError(BackendError):
    """Another library's error whose message, chain or body held a secret (a key a server echoed, a URL password),
    with every secret replaced by `***` and without the exception chain that held it (providers/scrub.py,
    docs/grading.md#secrets-in-logs). It keeps what a provider needs to retry it as the original would have been."""

    def __init__(
        self,
        message: str,
        *,
        original: str,
        retry: object = None,
        auth_failure: bool = False,
        status_code: int | None = None,
        body: object = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        """What Inspect shows as the error (it prefers an exception's `message`)."""
        self.original = original
        """The qualified class name of the error this stands in for."""
        self.retry = retry
        """The provider's retry decision for the original (a `RetryDecision`, True/False or None)."""
        self.auth_failure = auth_failure
        self.status_code = status_code
        if body is not None:
            self.body = body


def retries_requested(config: object) -> bool:
    """Whether the user bounded Inspect's retries themselves (`--max-retries` or `--timeout` in the generate
    config). Inspect retries a transient error forever when neither is set, so a server that refuses connections
    is retried only when the user asked for it; otherwise the call fails after a few quick tries
    (README, "Servers that do not answer")."""
    return getattr(config, "max_retries", None) is not None or getattr(config, "timeout", None) is not None


def missing_dependency(package: str, extra: str, feature: str) -> MissingDependencyError:
    """The error for an optional dependency that is not installed, in Inspect's wording ("pip install ...")."""
    return MissingDependencyError(
        f"{feature} requires the `{package}` package, which is not installed. "
        f'Install it with: pip install "userlm-plugin[{extra}]"'
    )


class UsageError(ConfigError, PrerequisiteError):
    """A user mistake found before any model loads (task arguments, roles, offline hub ids). Inspect's CLI prints
    a `PrerequisiteError` as its message alone, so the user sees one line instead of a traceback."""

    def __init__(self, message: str) -> None:
        ConfigError.__init__(self, message)
        self.message = message


__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "ConfigError",
    "IntentError",
    "MissingDependencyError",
    "ModelLoadError",
    "RedactedError",
    "RetryableBackendError",
    "UpstreamRequestError",
    "UserLMPluginError",
    "UsageError",
    "missing_dependency",
]
