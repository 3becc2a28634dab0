"""Fill an `ask_user` form from what the simulated user said, without inventing anything
(docs/agents.md#how-an-answer-is-read).

Our simulators write what a user would *say* (UserLM writes text; it cannot emit JSON). A person at Inspect's
console types each field's value; here each value is read from the reply by a rule that can only pick what is
there:
- a reply that is itself a JSON object (a prompted simulator may answer so) is the answer as it stands;
- `name: value` lines (the field's title or name, then a colon) give that field's text;
- a choice field takes the one option the reply names (its value or its title, as a whole phrase); a multi-select
  every option named;
- an integer or number field takes the one number in the reply (`1,250` and `-3.5` included; number words are not
  read);
- a yes/no field takes the reply's yes-words or no-words, when it has words of one side only;
- a free-text field takes the whole reply when it is the form's only field (a one-line question in chat).
A field no rule fills stays empty; a required empty field, two options named where one is wanted, or a value
outside the schema is an error that says what is wrong, in the words of Inspect's console where it has them
("Please choose one of: ...", "... is required."). The answer is then checked against the JSON Schema.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .questions import Field, Question, load_prompts, validation_error

_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w])")


def fill_form(reply: str, question: Question) -> tuple[dict[str, Any] | None, str | None]:
    """(answer, None) when the reply answers the form; (None, what is wrong) when it does not."""
    as_json = _json_object(reply)
    if as_json is not None:
        content: dict[str, Any] = {k: _dedupe(v) for k, v in as_json.items()}
    else:
        content = {}
        labelled = _labelled_values(reply, question.fields)
        for field in question.fields:
            value, error = _read(field, labelled.get(field.name), reply, question)
            if error is not None:
                return None, error
            if value is not None:
                content[field.name] = value
    for field in question.fields:
        if field.required and field.name not in content:
            return None, _missing(field)
    error = validation_error(question, content)
    return (None, error) if error is not None else (content, None)


def _read(field: Field, labelled: str | None, reply: str, question: Question) -> tuple[Any, str | None]:
    """The field's value from its labelled text, else from the whole reply; (None, None) when it stays empty."""
    text = labelled if labelled is not None else reply
    if field.kind == "string" and field.choices is None:
        if labelled is not None:
            return labelled, None
        if len(question.fields) == 1 and reply.strip():
            return reply.strip(), None
        return None, None
    if field.choices is not None:
        named = _named_choices(text, field.choices)
        if field.kind == "array":
            return (named or None), None
        if len(named) == 1:
            return named[0], None
        if len(named) > 1 or field.required:
            return None, _choose(field)
        return None, None
    if field.kind in ("integer", "number"):
        numbers = _numbers(text, integer=field.kind == "integer")
        if len(numbers) == 1:
            return numbers[0], None
        if numbers or field.required:
            key = (
                "Please enter a valid integer." if field.kind == "integer" else "Please enter a valid number."
            )
            return None, f"{field.label}: {key}"
        return None, None
    if field.kind == "boolean":
        value = _yes_no(text)
        if value is not None:
            return value, None
        return (None, f"{field.label}: Please answer y or n.") if field.required else (None, None)
    return None, None


def _json_object(reply: str) -> dict[str, Any] | None:
    """The reply as a JSON object, when the whole reply (a ```json fence allowed) is one."""
    text = reply.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.DOTALL)
    if fenced:
        text = fenced.group(1)
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _dedupe(value: Any) -> Any:
    """Multi-select answers keep each choice once, in order (as Inspect's forms return them)."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(dict.fromkeys(value))
    return value


def _labelled_values(reply: str, fields: tuple[Field, ...]) -> dict[str, str]:
    """`label: value` lines of the reply, by field name (the title or the name, case-insensitive)."""
    names = {f.label.lower(): f.name for f in fields} | {f.name.lower(): f.name for f in fields}
    found: dict[str, str] = {}
    for line in reply.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lstrip("-*• ").strip().lower()
        if sep and key in names and value.strip():
            found.setdefault(names[key], value.strip())
    return found


def _phrase(text: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(text)}(?!\w)", re.IGNORECASE)


def _named_choices(text: str, choices: tuple[tuple[str, str], ...]) -> list[str]:
    """Values of the options the text names (by value or title), in the order they first appear, each once."""
    hits: list[tuple[int, str]] = []
    for value, title in choices:
        positions = [m.start() for label in {value, title} if label for m in _phrase(label).finditer(text)]
        if positions:
            hits.append((min(positions), value))
    return list(dict.fromkeys(value for _, value in sorted(hits)))


def _numbers(text: str, integer: bool) -> list[int | float]:
    values: list[int | float] = []
    for match in _NUMBER.finditer(text):
        number = float(match.group(0).replace(",", ""))
        if integer and not number.is_integer():
            continue
        value: int | float = int(number) if number.is_integer() else number
        if value not in values:
            values.append(value)
    return values


def _yes_no(text: str) -> bool | None:
    words = load_prompts()
    says_yes = any(_phrase(w).search(text) for w in words["yes_words"])
    says_no = any(_phrase(w).search(text) for w in words["no_words"])
    return says_yes if says_yes != says_no else None


def _choose(field: Field) -> str:
    values = ", ".join(value for value, _ in field.choices or ())
    return f"{field.label}: Please choose one of: {values}."


def _missing(field: Field) -> str:
    return f"{field.label} is required."
