"""`serve --api-key`: every request must present the key, checked before anything of the request is read.

Clients send it as OpenAI's SDK and LiteLLM do, `Authorization: Bearer <key>` (`api_key=` in either). The check is
an ASGI wrapper around the whole app, so a request without the key never reaches the router, its body is never
read, and the answer is OpenAI's 401 error body (`invalid_api_key`). The comparison is constant-time: both sides
are hashed (SHA-256) and the digests compared with `hmac.compare_digest`, so neither the key's content nor its
length shows in the timing. `/health` stays open for liveness probes (docs/serving.md "API key").

The key comes from `--api-key`, `--api-key-file` or `USERLM_SERVE_API_KEY` (`resolve_api_key`); it is never
printed or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .contract import OPEN_PATHS

API_KEY_ENV = "USERLM_SERVE_API_KEY"
_UNAUTHORIZED = json.dumps(
    {
        "error": {
            "message": "Incorrect or missing API key: this server requires `Authorization: Bearer <key>` (the "
            "key it was started with: --api-key, --api-key-file or USERLM_SERVE_API_KEY)",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
).encode()


def resolve_api_key(flag: str | None, file: str | None, environ: dict[str, str] | None = None) -> str | None:
    """The key to require: `--api-key`, else `--api-key-file`'s first line, else `USERLM_SERVE_API_KEY`; None when
    none is set. Giving both flags, an unreadable file or an empty key is a `ConfigError`."""
    environ = os.environ if environ is None else environ
    if flag is not None and file is not None:
        raise ConfigError("pass --api-key or --api-key-file, not both")
    if file is not None:
        try:
            lines = Path(file).expanduser().read_text(encoding="utf-8").strip().splitlines()
            key = lines[0].strip() if lines else ""
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"--api-key-file {file}: cannot read it ({error})") from error
        where = f"--api-key-file {file}"
    elif flag is not None:
        key, where = flag.strip(), "--api-key"
    elif API_KEY_ENV in environ:
        key, where = environ[API_KEY_ENV].strip(), API_KEY_ENV
    else:
        return None
    if not key:
        raise ConfigError(f"{where}: the API key is empty")
    return key


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class RequireApiKey:
    """ASGI wrapper: HTTP requests outside `OPEN_PATHS` need `Authorization: Bearer <key>`."""

    def __init__(self, app: Any, key: str, on_reject: Callable[[], None] | None = None) -> None:
        self.app = app
        self._digest = _digest(key.encode("utf-8"))
        self._on_reject = on_reject

    def presented(self, scope: dict[str, Any]) -> bool:
        """Whether the request carries the key (constant-time in the key; module docstring)."""
        for name, value in scope.get("headers") or ():
            if name.lower() == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    return hmac.compare_digest(_digest(token.strip()), self._digest)
        return False

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or self.presented(scope):
            await self.app(scope, receive, send)
            return
        if self._on_reject is not None:
            self._on_reject()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(_UNAUTHORIZED)).encode()),
                    (b"www-authenticate", b"Bearer"),
                    (b"connection", b"close"),  # the body was never read: do not keep the connection for it
                ],
            }
        )
        await send({"type": "http.response.body", "body": _UNAUTHORIZED})


__all__ = ["API_KEY_ENV", "RequireApiKey", "resolve_api_key"]
