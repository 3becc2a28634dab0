"""Which parts of a model's settings are credentials, and copies of those settings fit for a log.

Three rules, applied wherever a value sits (top level, inside `extra_headers`/`extra_body`, any nested dict or
list; docs/grading.md#secrets-in-logs):

1. **By name.** A dict entry is a credential when one word of its name (split at `_`, `-`, `.`, spaces and
   camelCase, compared case-insensitively) is `key`, `keys`, `secret`, `secrets`, `token`, `credential`,
   `credentials`, `password`, `passwords`, `passwd`, `pwd`, `passphrase`, `authorization`, `auth`, `cookie`,
   `signature`, `sig` or `jwt`, or a run-together form such as `apikey`, `accesstoken`, `clientsecret`. So
   `api_key`, `aws_secret_access_key`, `azure_ad_token`, `vertex_credentials`, `extra_body.sig` are credentials;
   `max_tokens`, `max_completion_tokens` (plural `tokens` counts things), `top_k`, `keep_alive` are not. A value
   with no text in it (a number, bool, None, or containers of those) is never a credential, whatever its name.
2. **Headers.** Inside a mapping whose name ends in `headers` (`extra_headers`, `headers`, `default_headers`), every
   entry is a credential unless its name is on `HARMLESS_HEADERS` (content negotiation, tracing ids, API
   versions): a header is how servers take credentials, and its name says nothing reliable (`X-Session`).
3. **URLs.** In every string that is a URL (`scheme://...`), the userinfo (`user:password@`) becomes `***@` and
   the value of every query parameter not on `HARMLESS_QUERY` becomes `***` (`?api-key=***&api-version=2024-06-01`).

Rules 1 and 2 drop the entry from the copy; rule 3 keeps the URL with the parts replaced. Every value a rule takes
out is returned as well, so it can be scrubbed *by value* from error messages and bodies (`scrub.py`). The values
themselves still reach the call: only copies are cleaned.
"""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

from ..errors import UsageError

REDACTED = "***"
"""What replaces a secret that keeps its place (a URL's userinfo or query value, a value found in text)."""

CREDENTIAL_WORDS = frozenset(
    {
        "key",
        "keys",
        "secret",
        "secrets",
        "token",
        "credential",
        "credentials",
        "password",
        "passwords",
        "passwd",
        "pwd",
        "passphrase",
        "authorization",
        "auth",
        "cookie",
        "signature",
        "sig",
        "jwt",
    }
)
RUN_TOGETHER = re.compile(
    r"^(api|access|secret|private|client|session|subscription)?(key|token|secret)$|^apikey"
)
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z]|\b|[^A-Za-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")

HARMLESS_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "content-type",
        "user-agent",
        "x-request-id",
        "x-trace-id",
        "x-correlation-id",
        "traceparent",
        "tracestate",
        "openai-organization",
        "openai-project",
        "openai-beta",
        "anthropic-version",
        "anthropic-beta",
        "api-version",
        "http-referer",
        "x-title",
    }
)
"""Header names (compared case-insensitively) whose values are logged; every other header value is a credential."""

HARMLESS_QUERY = frozenset({"api-version", "api_version", "version", "alt", "beta"})
"""Query parameters whose values stay in a logged URL; every other query value is replaced by `***`."""

URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>`]+")
"""A URL inside a string (scheme, `://`, then anything up to whitespace or a quote)."""


def words(name: str) -> list[str]:
    """`X-Api-Key` -> [x, api, key]; `apiKey` -> [api, key]; `aws_secret_access_key` -> [aws, secret, ...]."""
    return [w.lower() for part in re.split(r"[^A-Za-z0-9]+", name) for w in _WORDS.findall(part)]


def is_credential(name: Any, value: Any = "") -> bool:
    """True when `name` (a model argument or body field) holds a credential by its name (rule 1). A value without
    any text in it (a number, bool, None, or containers of those: `stop_token_ids=[2]`) never is."""
    if not isinstance(name, str) or not _has_text(value):
        return False
    return any(w in CREDENTIAL_WORDS or RUN_TOGETHER.match(w) for w in words(name))


def _has_text(value: Any) -> bool:
    if isinstance(value, str):
        return True
    if isinstance(value, dict):
        return any(_has_text(v) for v in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_has_text(v) for v in value)
    return not (value is None or isinstance(value, bool | int | float))


def is_header_map(name: Any) -> bool:
    """A mapping of HTTP headers, by its name: `extra_headers`, `headers`, `default_headers` (rule 2)."""
    return isinstance(name, str) and (words(name) or [""])[-1] == "headers"


def is_harmless_header(name: Any) -> bool:
    return isinstance(name, str) and name.strip().lower() in HARMLESS_HEADERS


def redact_url(url: str, found: set[str] | None = None) -> str:
    """`url` with its userinfo and non-harmless query values replaced by `***` (rule 3); what was replaced is
    added to `found`. A string that is not a parsable URL comes back as `scheme://***`."""
    found = found if found is not None else set()
    try:
        parts = urlsplit(url)
    except ValueError:
        scheme = url.split("://", 1)[0]
        found.add(url)
        return f"{scheme}://{REDACTED}"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if userinfo != REDACTED:
            user, _, password = userinfo.partition(":")
            found.update(
                {userinfo, unquote(userinfo), unquote(user), unquote(password), _basic(user, password)}
            )
        netloc = f"{REDACTED}@{host}"
    query = parts.query
    if query:
        kept = []
        for pair in query.split("&"):
            name, eq, value = pair.partition("=")
            if eq and value and value != REDACTED and unquote_plus(name).lower() not in HARMLESS_QUERY:
                found.update({value, unquote_plus(value)})
                pair = f"{name}={REDACTED}"
            kept.append(pair)
        query = "&".join(kept)
    found.discard("")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_urls_in(text: str, found: set[str] | None = None) -> str:
    """`text` with every URL inside it redacted (rule 3): for error messages, which quote URLs mid-sentence."""
    if "://" not in text:
        return text
    return URL.sub(lambda m: redact_url(m.group(0), found), text)


def is_url(value: Any) -> bool:
    return isinstance(value, str) and URL.fullmatch(value.strip()) is not None


def has_redacted_parts(url: Any) -> bool:
    """Whether `url` is a logged copy (its userinfo or a query value is `***`): a retry from a log cannot use it."""
    if not is_url(url):
        return False
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    userinfo = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else ""
    return userinfo == REDACTED or any(
        pair.partition("=")[2] == REDACTED for pair in parts.query.split("&") if pair
    )


def refuse_redacted_url(model: str, name: str, url: Any, key_var: str) -> None:
    """A URL whose credentials read `***` is the logged copy (`inspect eval-retry` passes the logged model args
    back): sending it would fail at the server, so say why and how to run again."""
    if has_redacted_parts(url):
        raise UsageError(
            f"{model}: {name} {url} is the copy written to the log, with its credentials replaced by *** (they are "
            "never logged), so `inspect eval-retry` cannot reuse it. Run `inspect eval` again with the full URL, "
            f"or keep credentials out of the URL: pass the key with -M api_key=... or set {key_var} (the one "
            "way under eval-retry, which takes no -M)."
        )


def refuse_logged_base_url(model: str, base_url: Any, instead: str) -> None:
    """Inspect writes an eval's main-model base URL (`--model-base-url`) to the log as given, before any provider
    code runs; refuse one with credentials (`instead` says how else to pass them)."""
    from .._inspect_compat import base_url_logged_as_given

    if isinstance(base_url, str) and redact_url(base_url) != base_url and base_url_logged_as_given():
        raise UsageError(
            f"{model}: the base URL {redact_url(base_url)} carries credentials, and Inspect writes the main "
            f"model's base URL (--model-base-url) to the log as it is (eval.model_base_url). {instead}"
        )


def _basic(user: str, password: str) -> str:
    """The `Authorization: Basic` form of a URL's userinfo (what a server may echo back)."""
    return base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()


def collect_values(value: Any, found: set[str]) -> None:
    """Every string inside a credential's value (a header, a nested dict of keys, `Bearer <token>`'s parts)."""
    if isinstance(value, str):
        found.add(value)
        found.update(value.split())
    elif isinstance(value, dict):
        for item in value.values():
            collect_values(item, found)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            collect_values(item, found)


def loggable(value: Any, found: set[str] | None = None, *, headers: bool = False) -> Any:
    """A copy of `value` fit for a log: credential entries dropped (rules 1 and 2), URLs redacted (rule 3). Every
    value taken out is added to `found`. The original is never changed."""
    found = found if found is not None else set()
    if isinstance(value, dict):
        cleaned = {}
        for name, item in value.items():
            if (headers and not is_harmless_header(name)) or (not headers and is_credential(name, item)):
                collect_values(item, found)
                continue
            cleaned[name] = loggable(item, found, headers=is_header_map(name))
        return cleaned
    if isinstance(value, list | tuple):
        return type(value)(loggable(item, found) for item in value)
    if is_url(value):
        return redact_url(value.strip(), found)
    return value


def without_credentials(value: Any) -> Any:
    """A copy of `value` without credentials (see `loggable`)."""
    return loggable(value)


def clean_in_place(
    args: dict[str, Any], found: set[str] | None = None, *, settings: frozenset[str] = frozenset()
) -> list[str]:
    """Apply `loggable` to `args` itself (top level; nested containers are replaced by cleaned copies, so objects
    shared with the caller are not changed). Names in `settings` are a provider's own validated settings, never
    credentials by name (`userlm/`'s `end_token`), though URLs in them are still redacted. Returns the names of
    the top-level entries dropped or changed."""
    found = found if found is not None else set()
    touched = []
    for name in list(args):
        if name in settings:
            cleaned = {name: loggable(args[name], found)}
        else:
            cleaned = loggable({name: args[name]}, found)
        if name not in cleaned:
            del args[name]
            touched.append(name)
        elif cleaned[name] != args[name]:
            args[name] = cleaned[name]
            touched.append(name)
    return touched
