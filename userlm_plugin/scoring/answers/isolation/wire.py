"""Length-prefixed JSON messages over pipes, with deadlines and a size cap on the reading side.

A message is an 8-byte big-endian length and that many bytes of ASCII JSON. The trusted side reads with a
deadline and a cap (the worker may stall, flood, or send garbage: each is an error, never a hang), and
writes with a deadline too (a worker that stops reading must not block the launcher). The worker side
blocks: it only ever waits for the launcher.
"""

from __future__ import annotations

import json
import os
import select
import time

HEADER = 8
MAX_DIGITS = 4300
"""Longest decimal int literal accepted (Python's own default limit; converting decimal text to an int takes
quadratic time, so the trusted side never does it for long text the other side chose: big ints cross as
hexadecimal, `plain.py`)."""
POLL_S = 0.05
"""How often a waiting reader checks that the peer is still alive."""


class WireError(Exception):
    """The other side stalled, closed, flooded or broke the framing."""


class WireTimeout(WireError):
    pass


class WireClosed(WireError):
    pass


def dumps(message):
    return json.dumps(message, separators=(",", ":")).encode("ascii")


def send(fd, message, deadline=None):
    """Write one message; with a deadline, `fd` must be non-blocking."""
    body = dumps(message)
    data = memoryview(len(body).to_bytes(HEADER, "big") + body)
    while data:
        if deadline is not None:
            _wait(fd, deadline, write=True)
        try:
            written = os.write(fd, data)
        except BlockingIOError:
            continue
        except (BrokenPipeError, OSError) as ex:
            raise WireClosed(f"the other side closed the pipe ({type(ex).__name__})") from None
        data = data[written:]


def recv(fd, deadline=None, limit=None, alive=None):
    """Read one message. `limit`: most bytes accepted; `alive()`: False once the peer is gone."""
    size = int.from_bytes(_read(fd, HEADER, deadline, alive), "big")
    if limit is not None and size > limit:
        raise WireError(f"a message of {size} bytes is over the {limit}-byte limit")
    body = _read(fd, size, deadline, alive)
    try:
        return json.loads(body.decode("ascii"), parse_int=_bounded_int)
    except (ValueError, UnicodeDecodeError, RecursionError) as ex:
        raise WireError(f"a message that is not valid JSON ({type(ex).__name__})") from None


def _bounded_int(text):
    if len(text) > MAX_DIGITS + 1:
        raise ValueError(f"an int literal of more than {MAX_DIGITS} digits")
    return int(text)


def _read(fd, size, deadline, alive):
    chunks, missing = [], size
    while missing:
        if deadline is not None:
            _wait(fd, deadline, write=False, alive=alive)
        try:
            chunk = os.read(fd, min(missing, 1 << 20))
        except BlockingIOError:
            continue
        if not chunk:
            raise WireClosed("the other side closed the pipe")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def _wait(fd, deadline, write, alive=None):
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WireTimeout("no answer in time")
        wanted = ([], [fd], []) if write else ([fd], [], [])
        ready = select.select(*wanted, min(remaining, POLL_S))
        if ready[0] or ready[1]:
            return
        if alive is not None and not alive():
            raise WireClosed("the other side exited")
