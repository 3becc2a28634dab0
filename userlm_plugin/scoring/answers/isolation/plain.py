"""Plain data across the trust boundary: values of builtin types only, as JSON, never pickle.

`encode` turns a value into JSON-able data (the untrusted worker encodes what the candidate returned; the
trusted side encodes call arguments). `decode` is the trusted side's half: it accepts only the tagged forms
below and builds builtin objects from them, so whatever the candidate's process sends, the verdict is computed
on `int`/`str`/`list`/... objects whose `==` and type are Python's own. A candidate can lie only by returning
a different value, which is the same as answering wrongly.

Forms: null, true/false, numbers (NaN and infinities as JSON's NaN/Infinity), strings and lists stand for
themselves; every other type is an object {"~": tag, "v": payload}:
    "t" tuple, "d" dict (list of [key, value] pairs), "s" set, "f" frozenset, "b" bytes (latin-1 text),
    "a" bytearray, "c" complex ([real, imag]), "i" an iterator (its items, rebuilt as `iter(list)`),
    "n" an int of more than BIG_INT_BITS bits, as hexadecimal text: converting decimal text to an int takes
    time quadratic in its length (hence Python's 4,300-digit limit on it), hexadecimal takes linear time, so
    a big answer is decoded fast and still compares right.

Decoding is the trusted side's work on data the candidate chose, so it is bounded (docs/grading.md#limits):
at most MAX_NODES values, a deadline checked as it goes, and no set or dict whose members share one hash
(CPython's hash of an int is its value mod 2**61-1, so a candidate can make thousands of distinct ints
collide and turn building a set of them into minutes of the launcher's time).
Subclasses of builtins (an `IntEnum`, a `list` subclass with a rigged `__eq__`) cross as their builtin base;
anything else (a custom class, a NumPy scalar) is refused with `NotPlain`.

`same(got, expected)` is the comparison used for call-based tests; see its docstring (and docs/grading.md).
"""

from __future__ import annotations

import time

MAX_DEPTH = 100
"""Nesting limit on both sides (also stops self-referencing containers)."""
MAX_ITEMS = 1_000_000
"""Most items taken from an iterator the candidate returns."""
MAX_NODES = 4_000_000
"""Most values one decoded message may hold (a 16 MiB reply of one-digit list items holds 8 million)."""
MAX_SAME_HASH = 32
"""Most distinct members of one set (or keys of one dict) that may share a hash value."""
BIG_INT_BITS = 12_000
"""Ints longer than this (about 3,600 digits, under Python's 4,300-digit limit) cross as hexadecimal."""
DEADLINE_EVERY = 4096
"""Decoding checks its deadline once per this many values."""

_TAGS = {"t", "d", "s", "f", "b", "a", "c", "i", "n"}
_HEX = frozenset("0123456789abcdef")


class DecodeTimeout(ValueError):
    """Decoding ran past its deadline (the candidate's time: it chose the value)."""


class NotPlain(Exception):
    """A value that cannot cross the boundary (names its type)."""


def encode(value, depth=0):
    """`value` as JSON-able plain data (raises NotPlain)."""
    if depth > MAX_DEPTH:
        raise NotPlain(f"a value nested deeper than {MAX_DEPTH} levels")
    kind = type(value)  # type(), not isinstance(): a `__class__` property cannot lie to it
    if value is None or kind is bool or kind is str or kind is float:
        return value
    if issubclass(kind, int):
        return _encode_int(int.__int__(value))
    if issubclass(kind, float):
        return float.__float__(value)
    if issubclass(kind, str):
        return str.__str__(value)
    if issubclass(kind, list):
        return [encode(v, depth + 1) for v in list.__iter__(value)]
    if issubclass(kind, tuple):
        return {"~": "t", "v": [encode(v, depth + 1) for v in tuple.__iter__(value)]}
    if issubclass(kind, dict):
        pairs = [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(value)]
        return {"~": "d", "v": pairs}
    if issubclass(kind, frozenset):
        return {"~": "f", "v": [encode(v, depth + 1) for v in frozenset.__iter__(value)]}
    if issubclass(kind, set):
        return {"~": "s", "v": [encode(v, depth + 1) for v in set.__iter__(value)]}
    if issubclass(kind, bytes):
        return {"~": "b", "v": bytes.decode(value, "latin-1")}
    if issubclass(kind, bytearray):
        return {"~": "a", "v": bytearray.decode(value, "latin-1")}
    if issubclass(kind, complex):
        return {"~": "c", "v": [complex.real.__get__(value), complex.imag.__get__(value)]}
    if hasattr(kind, "__next__") and hasattr(kind, "__iter__"):
        items = []
        for item in value:
            if len(items) >= MAX_ITEMS:
                raise NotPlain(f"an iterator with more than {MAX_ITEMS} items")
            items.append(encode(item, depth + 1))
        return {"~": "i", "v": items}
    raise NotPlain(f"a value of type {_type_name(kind)}")


def _encode_int(value):
    if value.bit_length() <= BIG_INT_BITS:
        return value
    return {"~": "n", "v": format(value, "x")}


def _type_name(kind):
    try:
        return str(type.__getattribute__(kind, "__qualname__"))[:80]
    except Exception:  # noqa: BLE001 - a metaclass may lie; the name is only shown
        return "<unnamed type>"


def decode(data, deadline=None, max_nodes=MAX_NODES):
    """Builtin objects from `encode`'s forms; anything else raises ValueError (the sender broke the rules).
    `deadline` (time.monotonic()): raises DecodeTimeout once it has passed."""
    return _Decoder(deadline, max_nodes).decode(data, 0)


class _Decoder:
    def __init__(self, deadline, max_nodes):
        self.deadline = deadline
        self.left = max_nodes

    def _count(self):
        self.left -= 1
        if self.left < 0:
            raise ValueError(f"a value of more than {MAX_NODES} items")
        if self.deadline is not None and self.left % DEADLINE_EVERY == 0 and time.monotonic() > self.deadline:
            raise DecodeTimeout("the value could not be decoded in time")

    def decode(self, data, depth):
        if depth > MAX_DEPTH:
            raise ValueError(f"plain data nested deeper than {MAX_DEPTH} levels")
        self._count()
        kind = type(data)
        if data is None or kind is bool or kind is int or kind is float or kind is str:
            return data
        if kind is list:
            return [self.decode(v, depth + 1) for v in data]
        if kind is not dict or set(data) != {"~", "v"} or data["~"] not in _TAGS:
            raise ValueError(f"not a plain-data form: {_type_name(kind)}")
        tag, payload = data["~"], data["v"]
        if tag in ("b", "a", "n"):
            if type(payload) is not str:
                raise ValueError("bytes and big ints must be sent as text")
            if tag == "n":
                return _decode_int(payload)
            raw = payload.encode("latin-1")
            return raw if tag == "b" else bytearray(raw)
        if type(payload) is not list:
            raise ValueError(f"a {tag!r} form needs a list")
        if tag == "c":
            if len(payload) != 2 or not all(type(p) in (int, float) for p in payload):
                raise ValueError("complex must be [real, imag]")
            return complex(payload[0], payload[1])
        items = [self.decode(v, depth + 1) for v in payload]
        if tag == "t":
            return tuple(items)
        if tag == "i":
            return iter(items)
        if tag == "d" and not all(type(p) is list and len(p) == 2 for p in payload):
            raise ValueError("a dict is a list of [key, value] pairs")
        members = [p[0] for p in items] if tag == "d" else items
        self._refuse_collisions(members)
        try:
            if tag == "s":
                return set(members)
            if tag == "f":
                return frozenset(members)
            return {k: v for k, v in items}
        except TypeError as ex:  # an unhashable key or member
            raise ValueError(str(ex)) from None

    def _refuse_collisions(self, members):
        """Distinct members sharing one hash make every insert scan them all: refuse more than a few."""
        buckets = {}
        for member in members:
            self._count()
            try:
                key = hash(member)
            except TypeError as ex:
                raise ValueError(str(ex)) from None
            bucket = buckets.setdefault(key, [])
            if any(type(other) is type(member) and other == member for other in bucket):
                continue
            bucket.append(member)
            if len(bucket) > MAX_SAME_HASH:
                raise ValueError(f"a set or dict with more than {MAX_SAME_HASH} members of one hash value")


def _decode_int(text):
    digits = text[1:] if text.startswith("-") else text
    if not digits or not _HEX.issuperset(digits):
        raise ValueError("a big int must be hexadecimal text")
    return int(text, 16)


def same(got, expected):
    """Call-based test comparison, done in the trusted process on decoded values.

    Lost in Conversation's rule (`tasks/code/eval_code.py`, `grade_call_based`): a returned tuple counts as a
    list (top level only), then Python's `==`. Both sides are builtin objects here (`decode` built them), so
    this `==` is Python's own, the same one HumanEval's `check` asserts with: `True == 1` and `2 == 2.0` hold,
    `"1" == 1` and a nested tuple against a list do not, NaN equals nothing. Both scoring modes use this rule
    (docs/scoring.md, "Scoring modes").
    """
    if type(got) is tuple and type(expected) is list:
        got = list(got)
    return bool(got == expected)
