"""Plain data across the trust boundary: values of builtin types only, as JSON, never pickle.

`encode` turns a value into JSON-able data (the untrusted worker encodes what the candidate returned; the
trusted side encodes call arguments). `decode` is the trusted side's half: it accepts only the tagged forms
below and builds builtin objects from them, so whatever the candidate's process sends, the verdict is computed
on `int`/`str`/`list`/... objects whose `==` and type are Python's own. A candidate can lie only by returning
a different value, which is the same as answering wrongly.

Forms: null, true/false, numbers (NaN and infinities as JSON's NaN/Infinity), strings and lists stand for
themselves; every other type is an object {"~": tag, "v": payload}:
    "t" tuple, "d" dict (list of [key, value] pairs), "s" set, "f" frozenset, "b" bytes (latin-1 text),
    "a" bytearray, "c" complex ([real, imag]), "i" an iterator (its items, rebuilt as `iter(list)`).
Subclasses of builtins (an `IntEnum`, a `list` subclass with a rigged `__eq__`) cross as their builtin base;
anything else (a custom class, a NumPy scalar) is refused with `NotPlain`.

`same(got, expected)` is the comparison used for call-based tests; see its docstring (and docs/grading.md).
"""

from __future__ import annotations

MAX_DEPTH = 100
"""Nesting limit on both sides (also stops self-referencing containers)."""
MAX_ITEMS = 1_000_000
"""Most items taken from an iterator the candidate returns."""

_TAGS = {"t", "d", "s", "f", "b", "a", "c", "i"}


class NotPlain(Exception):
    """A value that cannot cross the boundary (names its type)."""


def encode(value, depth=0):
    """`value` as JSON-able plain data (raises NotPlain)."""
    if depth > MAX_DEPTH:
        raise NotPlain(f"a value nested deeper than {MAX_DEPTH} levels")
    kind = type(value)  # type(), not isinstance(): a `__class__` property cannot lie to it
    if value is None or kind is bool or kind is str or kind is int or kind is float:
        return value
    if issubclass(kind, int):
        return int.__int__(value)
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


def _type_name(kind):
    try:
        return str(type.__getattribute__(kind, "__qualname__"))[:80]
    except Exception:  # noqa: BLE001 - a metaclass may lie; the name is only shown
        return "<unnamed type>"


def decode(data, depth=0):
    """Builtin objects from `encode`'s forms; anything else raises ValueError (the sender broke the rules)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"plain data nested deeper than {MAX_DEPTH} levels")
    kind = type(data)
    if data is None or kind is bool or kind is int or kind is float or kind is str:
        return data
    if kind is list:
        return [decode(v, depth + 1) for v in data]
    if kind is not dict or set(data) != {"~", "v"} or data["~"] not in _TAGS:
        raise ValueError(f"not a plain-data form: {_type_name(kind)}")
    tag, payload = data["~"], data["v"]
    if tag in ("b", "a"):
        if type(payload) is not str:
            raise ValueError("bytes must be sent as text")
        raw = payload.encode("latin-1")
        return raw if tag == "b" else bytearray(raw)
    if type(payload) is not list:
        raise ValueError(f"a {tag!r} form needs a list")
    if tag == "c":
        if len(payload) != 2 or not all(type(p) in (int, float) for p in payload):
            raise ValueError("complex must be [real, imag]")
        return complex(payload[0], payload[1])
    items = [decode(v, depth + 1) for v in payload]
    try:
        if tag == "t":
            return tuple(items)
        if tag == "i":
            return iter(items)
        if tag == "s":
            return set(items)
        if tag == "f":
            return frozenset(items)
        if not all(type(p) is list and len(p) == 2 for p in payload):
            raise ValueError("a dict is a list of [key, value] pairs")
        return {k: v for k, v in items}
    except TypeError as ex:  # an unhashable key or member
        raise ValueError(str(ex)) from None


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
