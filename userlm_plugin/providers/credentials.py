"""Which model arguments and headers are credentials, and copies of requests without them (for logs only).

The rule works on the words of a name (split at `_`, `-`, `.`, spaces and camelCase, compared case-insensitively):
a name is a credential when one of its words is `key`, `keys`, `secret`, `secrets`, `token`, `credential`,
`credentials`, `password`, `passwords`, `passwd`, `authorization`, `auth`, `cookie` or `signature`, or a run-together
form such as `apikey`, `accesstoken`, `clientsecret`. So `api_key`, `X-Api-Key`, `aws_secret_access_key`,
`azure_ad_token`, `api_token`, `access_token`, `vertex_credentials`, `Authorization` and `Proxy-Authorization` are
credentials, while `max_tokens`, `max_completion_tokens` (plural `tokens` counts things), `top_k`, `keep_alive` and
`monkey` are not. A number, bool or None is never treated as a credential, whatever its name.

Used by the `litellm/` provider (docs/grading.md, "Secrets in logs"): the values still reach LiteLLM; only what is
logged (`eval.model_args`, each ModelCall request) loses them.
"""

from __future__ import annotations

import re
from typing import Any

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
        "authorization",
        "auth",
        "cookie",
        "signature",
    }
)
RUN_TOGETHER = re.compile(
    r"^(api|access|secret|private|client|session|subscription)?(key|token|secret)$|^apikey"
)
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z]|\b|[^A-Za-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def words(name: str) -> list[str]:
    """`X-Api-Key` -> [x, api, key]; `apiKey` -> [api, key]; `aws_secret_access_key` -> [aws, secret, ...]."""
    return [w.lower() for part in re.split(r"[^A-Za-z0-9]+", name) for w in _WORDS.findall(part)]


def is_credential(name: Any, value: Any = "") -> bool:
    """True when `name` (a model argument, header or body field) holds a credential (see the module rule)."""
    if not isinstance(name, str) or value is None or isinstance(value, bool | int | float):
        return False
    return any(w in CREDENTIAL_WORDS or RUN_TOGETHER.match(w) for w in words(name))


def without_credentials(value: Any) -> Any:
    """A copy of `value` without the credential entries of any nested dict (lists and tuples are walked too).
    The original is never changed."""
    if isinstance(value, dict):
        return {k: without_credentials(v) for k, v in value.items() if not is_credential(k, v)}
    if isinstance(value, list | tuple):
        return type(value)(without_credentials(v) for v in value)
    return value


def drop_credentials_in_place(args: dict[str, Any]) -> list[str]:
    """Remove credentials from `args` itself (top level; nested containers are replaced by cleaned copies, so
    objects shared with the caller are not changed). Returns the names of the top-level entries touched."""
    touched = []
    for name in list(args):
        cleaned = without_credentials({name: args[name]})
        if name not in cleaned:
            del args[name]
            touched.append(name)
        elif cleaned[name] != args[name]:
            args[name] = cleaned[name]
            touched.append(name)
    return touched
