"""The UNTRUSTED side: loads the candidate's program and answers calls with plain data.

Runs in a fresh, confined interpreter started by the launcher (`confine.py`). It decides nothing: whatever
this process does, including everything the candidate's code does to it (patching this module, `json`,
builtins; walking frames; writing to the pipes; exiting), the launcher only ever receives plain values
(`plain.py`) and compares them itself. The candidate never sees expected outputs or the test code.

Conversation on the two pipes (`wire.py`), after the bundle that booted this module:
    worker -> {"ready": true}
    launcher -> {"op": "load", "program", "preamble", "target", "solution_class"} | {"op": "decode", "blob"}
    worker -> {"loaded": true} | {"load_error": text}        (decode: {"value": tests} | {"error": text})
    launcher -> {"op": "call", "seq", "args", "kwargs"}      (repeated)
    worker -> {"seq", "value"} | {"seq", "raised": {...}} | {"seq", "not_plain": text}
Candidate stdout/stderr go to files the launcher reads (never to these pipes).

The interpreter runs with -I -S: its import path is the standard library and nothing else, at every
isolation level (docs/grading.md#what-a-candidate-may-import).

Private LiveCodeBench tests are zlib+base64+pickle: unpickling runs code, so they are decoded by a worker of
their own ("decode"), with no candidate code, confined like the candidate, and sent back as plain data.
"""

from __future__ import annotations

import base64
import json
import linecache
import os
import pickle
import traceback
import zlib

from . import plain, wire
from .preamble import preamble_source

SHOWN = 500


def main(in_fd, out_fd):
    wire.send(out_fd, {"ready": True})
    job = wire.recv(in_fd)
    if job["op"] == "decode":
        wire.send(out_fd, _decode_job(job["blob"]))
        os._exit(0)
    target, error = _load(job)
    wire.send(out_fd, {"load_error": error} if error else {"loaded": True})
    if error:
        os._exit(0)
    while True:
        try:
            request = wire.recv(in_fd)
        except wire.WireError:
            os._exit(0)
        reply = _call(target, request)
        reply["seq"] = request.get("seq")
        wire.send(out_fd, reply)


def _decode_job(blob):
    try:
        return {"value": plain.encode(decode_private(blob))}
    except BaseException as ex:  # noqa: BLE001 - any failure is reported, not raised
        return {"error": _describe(ex)["message"]}


def decode_private(blob):
    """LiC/LiveCodeBench private tests: a JSON list, or zlib+base64+pickle of a JSON string."""
    if isinstance(blob, list):
        return blob
    try:
        return json.loads(blob)
    except (ValueError, TypeError):
        pass
    decoded = pickle.loads(zlib.decompress(base64.b64decode(blob.encode("utf-8"))))
    return json.loads(decoded) if type(decoded) in (str, bytes) else decoded


def _load(job):
    """Run the program (after LiC's preamble when asked) and find what the tests call."""
    namespace = {"__name__": "__candidate__"}
    program = job["program"]
    linecache.cache["candidate.py"] = (len(program), None, program.splitlines(True), "candidate.py")
    try:
        if job.get("preamble"):
            exec(compile(preamble_source(), "preamble.py", "exec", dont_inherit=True), namespace)
        exec(compile(program, "candidate.py", "exec", dont_inherit=True), namespace)  # not our __future__
        name = job["target"]
        solution_class = job.get("solution_class")
        if solution_class is None:  # LiC's rule: LeetCode-style answers are recognised by this text
            solution_class = "class Solution" in program
        if solution_class:
            owner = namespace.get("Solution")
            if owner is None:
                return None, "class 'Solution' is not defined"
            target = getattr(owner(), name, None)
            where = f"method {name!r} of class Solution"
        else:
            target = namespace.get(name)
            where = f"function {name!r}"
    except BaseException:  # noqa: BLE001 - SystemExit and KeyboardInterrupt included
        return None, "the code failed to load:\n" + traceback.format_exc(limit=-3)[-2000:]
    if target is None:
        return None, where + " is not defined"
    if not callable(target):
        return None, where + " is not callable"
    return target, None


def _call(target, request):
    try:
        args = plain.decode(request["args"])
        kwargs = plain.decode(request["kwargs"])
    except (KeyError, ValueError) as ex:
        return {"raised": {"type": "ValueError", "message": f"bad request: {ex}", "traceback": ""}}
    try:
        value = target(*args, **kwargs)
    except BaseException as ex:  # noqa: BLE001
        return {"raised": _describe(ex)}
    try:
        return {"value": plain.encode(value)}
    except plain.NotPlain as ex:
        return {"not_plain": str(ex)}
    except BaseException as ex:  # noqa: BLE001 - a hostile value may raise anything while encoded
        return {"raised": _describe(ex)}


def _describe(ex):
    try:
        message = str(ex)[:SHOWN]
    except BaseException:  # noqa: BLE001
        message = "<unprintable>"
    try:
        tb = traceback.format_exc(limit=-3)[-1500:]
    except BaseException:  # noqa: BLE001
        tb = ""
    return {"type": type(ex).__name__, "message": message, "traceback": tb}
