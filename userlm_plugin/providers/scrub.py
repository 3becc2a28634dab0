"""Secrets scrubbed *by value*: from error messages, error bodies and requests, before Inspect logs them.

Names and URL parts (`credentials.py`) find the secrets a model is configured with; a server can still echo one back
("Incorrect API key provided: sk-..."), and Inspect writes an error's message, its traceback (with every chained
exception's message) and the error body into the log. So each provider keeps its configured secret values in a
`Secrets`, and everything it hands to Inspect goes through it: an exception whose text (or whose chain's text)
holds a secret is replaced by a copy with `***` in its place and no chain (`scrubbed_error`), raised so that its
traceback shows the frames but never the original message. docs/grading.md#secrets-in-logs.

Values shorter than `MIN_SCRUB_CHARS` are not scrubbed by value (an `api_key=x` for a local server would turn every
"x" into `***`); URL userinfo and query values are redacted wherever a URL appears, whatever their length.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

from ..errors import RedactedError
from .credentials import REDACTED, is_credential, redact_urls_in

MIN_SCRUB_CHARS = 8
"""Secrets shorter than this are not scrubbed by value (they would match ordinary text)."""

_CHAIN_LIMIT = 12


def environment_secrets() -> set[str]:
    """The values of environment variables whose names are credentials (`OPENAI_API_KEY`, `HF_TOKEN`,
    `AWS_SECRET_ACCESS_KEY`, ...): LiteLLM and the OpenAI client read keys from there, and a server may echo one."""
    return {value for name, value in os.environ.items() if value and is_credential(name, value)}


def _forms(value: str) -> set[str]:
    """A secret as it may appear in text: as given, stripped, percent-encoded, JSON-escaped."""
    stripped = value.strip()
    return {value, stripped, quote(stripped, safe=""), json.dumps(stripped)[1:-1]}


class Secrets:
    """A set of secret values and the one pass that replaces them in text."""

    def __init__(self, values: Iterable[Any] = ()) -> None:
        forms: set[str] = set()
        for value in values:
            if isinstance(value, str):
                forms.update(f for f in _forms(value) if len(f) >= MIN_SCRUB_CHARS and f != REDACTED)
        self.values = frozenset(forms)
        ordered = sorted(forms, key=len, reverse=True)  # the longest first: a key inside "Bearer <key>"
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __or__(self, other: Secrets) -> Secrets:
        return Secrets([*self.values, *other.values])

    def __bool__(self) -> bool:
        return bool(self.values)

    def scrub(self, text: str) -> str:
        """`text` with every secret value replaced by `***` and every URL's credentials redacted."""
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        return redact_urls_in(text)

    def holds(self, text: str) -> bool:
        """Whether `scrub` would change `text`."""
        return self.scrub(text) != text

    def scrub_value(self, value: Any) -> Any:
        """A copy of a JSON-like value with every string scrubbed (dict keys too)."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {self.scrub_value(k): self.scrub_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.scrub_value(v) for v in value)
        return value


LIBRARY_LOGGERS = (
    "LiteLLM",
    "LiteLLM Router",
    "LiteLLM Proxy",
    "openai",
    "openai._base_client",
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "aiohttp.client",
)
"""The loggers the libraries our providers call write to (a filter applies to records created at its own logger,
not its children's, so each is named). Inspect copies log records into the sample's transcript (at
`--log-level-transcript` and above, once the root level lets them through), and LiteLLM's debug records print
each request, headers included."""

_registered = Secrets()


class _ScrubRecords(logging.Filter):
    """Scrubs every registered secret (and URL credentials) from a record's message before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _registered
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: logging reports it later, as it would without us
            return True
        clean = secrets.scrub(message)
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and chain_holds_secret(error, secrets):
            clean = f"{clean} ({_describe(error, secrets)})"  # the traceback would print the original's text
            record.exc_info, record.exc_text = None, None
        if clean != message:
            record.msg, record.args = clean, ()
        return True


_FILTER = _ScrubRecords()


def register_secrets(secrets: Secrets) -> None:
    """Add a provider's secrets to those scrubbed from the libraries' log records (process-wide: a record does not
    say which model it is about)."""
    global _registered
    if not secrets.values <= _registered.values:
        _registered = _registered | secrets
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def exception_chain(ex: BaseException) -> Iterator[BaseException]:
    """`ex`, then its causes and contexts (what a traceback prints), at most `_CHAIN_LIMIT` of them."""
    seen: set[int] = set()
    current: BaseException | None = ex
    while current is not None and id(current) not in seen and len(seen) < _CHAIN_LIMIT:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)


def _texts(ex: BaseException) -> Iterator[str]:
    """Every text of an exception that a log may show: its message, args, `message` and `body` attributes."""
    yield str(ex)
    yield repr(ex.args)
    for attribute in ("message", "body", "__notes__"):
        value = getattr(ex, attribute, None)
        if value is not None:
            yield value if isinstance(value, str) else repr(value)


def chain_holds_secret(ex: BaseException, secrets: Secrets) -> bool:
    return any(secrets.holds(text) for e in exception_chain(ex) for text in _texts(e))


def _own(ex: BaseException) -> bool:
    return type(ex).__module__.startswith("userlm_plugin.")


def _scrubbed_copy(ex: BaseException, secrets: Secrets) -> BaseException:
    """One of our own errors, same class and attributes, with its text scrubbed and no chain."""
    args = tuple(secrets.scrub(a) if isinstance(a, str) else a for a in ex.args)
    new = type(ex).__new__(type(ex), *args)
    new.args = args
    for name, value in vars(ex).items():
        if isinstance(value, BaseException):
            value = None  # e.g. LiteLLMBadRequest.cause: the original, unscrubbed
        elif isinstance(value, str | dict | list | tuple):
            value = secrets.scrub_value(value)
        setattr(new, name, value)
    return new


def _describe(ex: BaseException, secrets: Secrets) -> str:
    text = secrets.scrub(str(ex))
    name = type(ex).__name__
    return text if name in text[:120] else f"{name}: {text}"


def scrubbed_error(
    ex: BaseException,
    secrets: Secrets,
    *,
    retry: Any = None,
    auth_failure: bool = False,
) -> BaseException:
    """`ex` itself when neither it nor its chain holds a secret; else a scrubbed stand-in without the chain.

    Our own errors keep their class (a copy with scrubbed text). Any other error becomes a `RedactedError` that
    carries the original's class name, its scrubbed message and those of its causes, its status code and
    scrubbed body, and how the provider would have retried it (`retry`, `auth_failure`), so retries behave as
    before. Raise the result with `raise error.with_traceback(ex.__traceback__) from None` outside the `except`
    block, so Python attaches no context.
    """
    if not chain_holds_secret(ex, secrets):
        return ex
    if _own(ex):
        return _scrubbed_copy(ex, secrets)
    lines = [_describe(ex, secrets)]
    for cause in list(exception_chain(ex))[1:5]:
        text = secrets.scrub(str(cause))
        if text and all(text[-60:] not in seen for seen in lines):  # a cause that only repeats adds nothing
            lines.append(f"caused by {_describe(cause, secrets)[:300]}")
    body = getattr(ex, "body", None)
    return RedactedError(
        "; ".join(lines) + f" [secrets in this error were replaced by {REDACTED}]",
        original=f"{type(ex).__module__}.{type(ex).__qualname__}",
        retry=retry,
        auth_failure=auth_failure,
        status_code=getattr(ex, "status_code", None),
        body=secrets.scrub_value(body) if body is not None else None,
    )


__all__ = [
    "LIBRARY_LOGGERS",
    "MIN_SCRUB_CHARS",
    "Secrets",
    "chain_holds_secret",
    "environment_secrets",
    "exception_chain",
    "register_secrets",
    "scrubbed_error",
]
