"""An agent's `ask_user` question: the schema checked as Inspect checks it, shown to the simulated user as Inspect's
console shows it to a person, and every answer validated against it (docs/agents.md#the-ask_user-tool).

Inspect 0.3.285's `ask_user(message, schema)` (`inspect_ai/tool/_tools/_ask_user.py`) takes an ACP
`ElicitationSchema`: an object whose properties are strings (optionally `enum` / `oneOf` choices, `minLength`,
`maxLength`, `pattern`, `format`), integers and numbers (`minimum`, `maximum`), booleans, and multi-select arrays
(`items.enum` or `items.anyOf`, `minItems`, `maxItems`). It lowercases `type` values, validates the schema, and
refuses other property types with `ToolError("Invalid schema: ...")` so the model can correct itself. We do the
same, with Inspect's own helpers, so a schema is valid for our `ask_user` exactly when it is valid for Inspect's.

An answer is validated with `jsonschema` against the schema as JSON Schema (the `ElicitationSchema` dumped by its
JSON names), tightened where Inspect's own form is stricter than JSON Schema: no keys outside the properties, a
`pattern` must match the whole string (Inspect's console uses `re.fullmatch`), and `required` counts only names
that are properties (Inspect's forms walk the properties and never ask for any other name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml
from inspect_ai.tool import ToolError

from ..simulators._common import render

DECLINED = "User declined to answer the question."
"""The `ToolError` text of Inspect's `ask_user` when the user declines (the agent sees exactly this)."""


@cache
def load_prompts(name: str = "ask_user") -> dict[str, Any]:
    """Read `agents/prompts/<name>.yaml` (package data)."""
    text = resources.files(__package__).joinpath("prompts", f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


@dataclass(frozen=True)
class Field:
    """One property of the form, in the terms the simulated user and the form filler need."""

    name: str
    label: str
    kind: str
    """`string`, `integer`, `number`, `boolean` or `array` (multi-select)."""
    required: bool
    description: str | None = None
    choices: tuple[tuple[str, str], ...] | None = None
    """(value, title) pairs of a bounded string or a multi-select; None for free values."""
    constraints: tuple[str, ...] = ()
    """The property's other bounds in words (for the question shown to the user)."""


@dataclass(frozen=True)
class Question:
    """A validated `ask_user` call: the agent's message, the ACP schema, and the JSON Schema answers must meet."""

    message: str
    schema: Any
    """The validated `acp.schema.ElicitationSchema` (what Inspect's `request_input` receives)."""
    fields: tuple[Field, ...]
    json_schema: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        """The question as the turn record keeps it."""
        return {"message": self.message, "schema": self.json_schema}


def parse_question(message: str, schema: dict[str, Any]) -> Question:
    """Validate `schema` as Inspect's `ask_user` does; `ToolError("Invalid schema: ...")` when it is not one."""
    from acp.schema import (
        ElicitationMultiSelectPropertySchema,
        ElicitationOtherPropertySchema,
        ElicitationSchema,
        OtherMultiSelectItems,
    )
    from pydantic import ValidationError

    from .._inspect_compat import normalize_schema_types

    try:
        validated = ElicitationSchema.model_validate(normalize_schema_types(schema))
    except ValidationError as ex:
        raise ToolError(f"Invalid schema: {ex}") from None
    properties = validated.properties or {}
    unsupported = [
        f"property {name!r} has unsupported type {prop.type!r}"
        for name, prop in properties.items()
        if isinstance(prop, ElicitationOtherPropertySchema)
    ] + [
        f"property {name!r} has unsupported items type {prop.items.type!r}"
        for name, prop in properties.items()
        if isinstance(prop, ElicitationMultiSelectPropertySchema)
        and isinstance(prop.items, OtherMultiSelectItems)
    ]
    if unsupported:
        raise ToolError(f"Invalid schema: {'; '.join(unsupported)}")
    required = [name for name in (validated.required or []) if name in properties]
    fields = tuple(_field(name, prop, name in required) for name, prop in properties.items())
    return Question(
        message=message, schema=validated, fields=fields, json_schema=answer_schema(validated, required)
    )


def answer_schema(validated: Any, required: list[str]) -> dict[str, Any]:
    """The JSON Schema an answer must meet (see the module docstring for where it is stricter than the dump)."""
    dumped = validated.model_dump(by_alias=True, exclude_none=True, exclude={"field_meta"})
    properties: dict[str, Any] = {}
    for name, prop in (dumped.get("properties") or {}).items():
        prop = {k: v for k, v in prop.items() if k != "_meta"}
        if isinstance(prop.get("pattern"), str):
            prop["pattern"] = rf"\A(?:{prop['pattern']})\Z"
        properties[name] = prop
    out: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def validation_error(question: Question, content: Any) -> str | None:
    """Why `content` is not a valid answer to `question` (the first problem, naming the field), else None."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(question.json_schema)
    errors = sorted(validator.iter_errors(content), key=lambda e: (list(e.absolute_path), e.message))
    if not errors:
        return None
    error = errors[0]
    where = ".".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


def _field(name: str, prop: Any, required: bool) -> Field:
    words = load_prompts()
    kind = prop.type
    choices: tuple[tuple[str, str], ...] | None = None
    constraints: list[str] = []
    if kind == "string":
        if prop.one_of is not None:
            choices = tuple((o.const, o.title) for o in prop.one_of)
        elif prop.enum is not None:
            choices = tuple((v, v) for v in prop.enum)
        if prop.min_length is not None:
            constraints.append(render(words["min_length"], count=str(prop.min_length)))
        if prop.max_length is not None:
            constraints.append(render(words["max_length"], count=str(prop.max_length)))
        if prop.pattern is not None:
            constraints.append(render(words["pattern"], pattern=prop.pattern))
        if prop.format is not None:
            constraints.append(render(words["format"], format=prop.format))
    elif kind in ("integer", "number"):
        constraints.append(words[kind])
        if prop.minimum is not None:
            constraints.append(render(words["minimum"], minimum=_num(prop.minimum)))
        if prop.maximum is not None:
            constraints.append(render(words["maximum"], maximum=_num(prop.maximum)))
    elif kind == "boolean":
        constraints.append(words["boolean"])
    elif kind == "array":
        items = prop.items
        if getattr(items, "any_of", None) is not None:
            choices = tuple((o.const, o.title) for o in items.any_of)
        else:
            choices = tuple((v, v) for v in items.enum)
        if prop.min_items is not None:
            constraints.append(render(words["min_items"], count=str(prop.min_items)))
        if prop.max_items is not None:
            constraints.append(render(words["max_items"], count=str(prop.max_items)))
    return Field(
        name=name,
        label=prop.title or name,
        kind=kind,
        required=required,
        description=prop.description,
        choices=choices,
        constraints=tuple(constraints),
    )


def _num(value: float | int) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def render_question(question: Question) -> str:
    """The question as the simulated user reads it (the assistant's message): Inspect's console in chat form."""
    words = load_prompts()
    only = question.fields[0] if len(question.fields) == 1 else None
    if only is not None and only.kind == "string" and only.choices is None and not only.constraints:
        return question.message.strip()  # one free-text field: an ordinary question
    lines = []
    for field in question.fields:
        details: list[str] = []
        if field.description:
            details.append(field.description.strip())
        if field.choices is not None:
            key = "multi_choices" if field.kind == "array" else "choices"
            details.append(render(words[key], values=", ".join(_choice_text(c) for c in field.choices)))
        details.extend(field.constraints)
        if not field.required:
            details.append(words["optional"])
        detail_text = render(words["details"], details="; ".join(details)) if details else ""
        lines.append(render(words["field"], label=field.label, details=detail_text))
    return render(words["question"], message=question.message.strip(), fields="\n".join(lines)).strip()


def render_retry(question: Question, error: str) -> str:
    """The question asked again after a reply that did not fit, with what was wrong (as the console re-prompts)."""
    return render(load_prompts()["retry"], error=error, question=render_question(question)).strip()


def _choice_text(choice: tuple[str, str]) -> str:
    value, title = choice
    return value if value == title else f"{value} ({title})"


_PUNCTUATION = re.compile(r"[^\w\s:/']+")


def is_decline(reply: str) -> bool:
    """True when the reply refuses to answer (`declines` in prompts/ask_user.yaml), rather than answering."""
    words = load_prompts()
    tokens = _PUNCTUATION.sub(" ", reply.lower().replace("\u2019", "'")).split()
    if not tokens:
        return False
    declines = set(words["declines"])
    if " ".join(tokens) in declines:  # before dropping fillers: "i'm not sure" keeps its "i'm"
        return True
    fillers = set(words["decline_fillers"])
    return " ".join(t for t in tokens if t not in fillers) in declines
