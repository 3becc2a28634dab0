"""SimulatorArena's human conversations (microsoft/SimulatorArena, MIT; arXiv 2510.05444) as conversation records,
with intents written the way UserLM's are (docs/fidelity.md#simulatorarena).

Two files of the repository's `data/` folder, at a pinned commit: document creation (51 crowd workers writing a
document with an assistant: the task, the private background each wrote beforehand, their turns, the assistant's,
which assistant it was, and their own two 1-10 ratings) and math tutoring (50 students with a tutor model; the
MATH problem text is redacted, so the student's intent is partial). `-T source=simulatorarena` downloads the file
once into the cache and checks its SHA-256; `-T data=<file>` reads a local copy (either file; the kind is told
by its fields).

Human ratings are z-normalised per worker over the whole file as SimulatorArena's
`evaluation/document_creation/scripts/show_simulator_performance.py` does (workers with fewer than 3 ratings
pooled, sample standard deviation, 0 when it is undefined), here at load time, so a `--limit` run normalises
exactly as the full one.
"""

from __future__ import annotations

import ast
import hashlib
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ...errors import ConfigError, UsageError
from ...simulators._common import USERLM_INTENT_PREFIX
from ...simulators.background import BACKGROUND_KEY
from ...train.conversations import ChatRecord

REPOSITORY = "microsoft/SimulatorArena"
COMMIT = "e9f677c4975496fdd37f28bb6343ec3c1c54c8b4"
"""The pinned commit (2026-05-12) the files and hashes below come from."""

Subset = Literal["document_creation", "math_tutoring"]


@dataclass(frozen=True)
class ArenaFile:
    name: str
    sha256: str

    def url(self, commit: str = COMMIT) -> str:
        return f"https://raw.githubusercontent.com/{REPOSITORY}/{commit}/data/{self.name}"


FILES: dict[str, ArenaFile] = {
    "document_creation": ArenaFile(
        "document_creation_annotations_for_benchmarking.json",
        "1b6d563dea0cb53a9d3c0af7308740ddcbb65ef6fdea06e597cbd1495b71ab10",
    ),
    "math_tutoring": ArenaFile(
        "math_tutoring_annotations_redacted_for_benchmarking.json",
        "731eec019876edbc87b40c8e2efffe00ae6abe63060f1b34aaacce7b46e798d1",
    ),
}

DOCUMENT_ASSISTANT_PROMPT = (
    "You are a skilled writing assistant. Your role is to help users create and edit documents that should be "
    "under 600 words by following their specific instructions and requirements."
)
"""The system prompt the document-creation assistants had in the human study (SimulatorArena
`crowdsoucing/heroku/document_creation/app.py` at the pinned commit): the correlation protocol gives the same one."""

DOCUMENT_LENGTH = "The document should be between 100 and 500 words."
"""The length the crowd workers were told (same app.py) and SimulatorArena's simulators are given."""

MATH_EXPERTISE = {"9-12": "high-school (grade 9-12)", "undergrad": "undergraduate", "grad": "graduate"}

RATINGS = ("overall_interaction_rating", "overall_document_rating")
"""The two 1-10 scales each document-creation worker rated their conversation on."""

MIN_RATINGS_PER_WORKER = 3
"""Workers with fewer ratings than this are z-normalised as one pool (SimulatorArena's rule)."""


def subset_of(record: Any) -> Subset | None:
    """Which SimulatorArena file a record comes from, told by its fields (None: not a SimulatorArena record)."""
    if not isinstance(record, dict) or "user_queries" not in record:
        return None
    if "bullet_points" in record or "document_type" in record:
        return "document_creation"
    if "math_expertise" in record or "question_location" in record:
        return "math_tutoring"
    return None


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if not text or text[-1] in ".!?" else text + "."


def document_intent(record: dict[str, Any]) -> str:
    """The user's intent for a document-creation conversation, in UserLM's training frame: "You are a user chatting
    with an assistant language model to get help writing an email (apology letter): write a sincere letter
    apologizing to ... The document should be between 100 and 500 words." (the length the workers were told)."""
    task = str(record.get("intent") or "").strip()
    document_type = str(record.get("document_type") or "document").strip()
    title, colon, description = task.partition(":")
    what = f"{_article(document_type)} {document_type}"
    goal = (
        f"get help writing {what} ({title.strip().lower()}): {_lower_first(description.strip())}"
        if colon and description.strip()
        else f"get help writing {what}: {_lower_first(task)}"
    )
    return f"{_sentence(f'{USERLM_INTENT_PREFIX} {goal}')} {DOCUMENT_LENGTH}"


def document_background(record: dict[str, Any]) -> list[dict[str, str]]:
    """The private background the worker wrote before the chat, as `user_background` question/answer pairs (the
    shape `simulators/background.py` appends to the intent; unanswered questions left out)."""
    return [
        {"question": str(q).strip(), "answer": str(a).strip()}
        for q, a in zip(
            record.get("bullet_points") or [], record.get("bullet_points_responses") or [], strict=False
        )
        if str(a).strip()
    ]


MATH_INTENT_NOTE = (
    "partial intent: SimulatorArena redacts the MATH problem text (only its path in the MATH dataset is "
    "published), and the study's app showed the problem to the tutor with the student's first message, so the "
    "simulator knows the problem's subject and level but not the problem the student and the tutor saw"
)


def math_intent(record: dict[str, Any]) -> str:
    """The student's intent, as far as the redacted record allows (see `MATH_INTENT_NOTE`)."""
    kind = str(record.get("type") or "math").strip()
    level = str(record.get("level") or "").strip()
    goal = f"get help from a math tutor with a {kind} problem" + (f" (MATH {level})" if level else "")
    goal += ", working towards the answer yourself"
    if record.get("moved_to_problem_2"):
        goal += ", and then with a second problem on similar concepts"
    parts = [_sentence(f"{USERLM_INTENT_PREFIX} {goal}")]
    expertise = MATH_EXPERTISE.get(str(record.get("math_expertise")), str(record.get("math_expertise") or ""))
    if expertise:
        parts.append(f"Your math background is {expertise} level.")
    why = str(record.get("why_ask_tutor_other_reason") or record.get("why_ask_tutor") or "").strip()
    if why:
        parts.append(f"Why you asked for a tutor, in your words: {_sentence(why)}")
    return " ".join(parts)


def _turn_list(value: Any, field: str) -> list[str]:
    """`user_queries` / `ai_responses` as a list of strings (a Python-literal list in a string is accepted too)."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError) as error:
            raise ConfigError(
                f"field `{field}` is a string but not a Python list literal ({error})"
            ) from error
    if not isinstance(value, list) or not value:
        raise ConfigError(f"field `{field}` must be a non-empty list of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            what = "an uploaded file" if isinstance(item, list) else type(item).__name__
            raise ConfigError(f"field `{field}[{i}]` is {what}, not text: a simulator cannot write it")
        if not item.strip():
            raise ConfigError(f"field `{field}[{i}]` is empty")
    return value


def arena_record(
    raw: Any, index: int, subset: Subset, background: bool = True, human_z: dict[str, float] | None = None
) -> ChatRecord:
    """One SimulatorArena record -> a conversation record (raises `ConfigError` naming the field)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a record must be a JSON object, got {type(raw).__name__}")
    users = _turn_list(raw.get("user_queries"), "user_queries")
    assistants = _turn_list(raw.get("ai_responses"), "ai_responses")
    if len(users) != len(assistants):
        raise ConfigError(
            f"`user_queries` has {len(users)} turns but `ai_responses` has {len(assistants)}: each human turn "
            "needs the assistant's reply"
        )
    turns = tuple(
        turn
        for user, assistant in zip(users, assistants, strict=True)
        for turn in (
            {"role": "user", "content": user.strip()},
            {"role": "assistant", "content": assistant.strip()},
        )
    )
    worker = raw.get("workerId")
    extra: dict[str, Any] = {
        "source": f"{REPOSITORY}@{COMMIT[:10]}/{subset}",
        "subset": subset,
        "assistant_model": raw.get("model"),
    }
    if subset == "document_creation":
        intent = document_intent(raw)
        if background:
            extra[BACKGROUND_KEY] = document_background(raw)
        extra["document_type"] = raw.get("document_type")
        extra["task"] = raw.get("intent")
        for field in RATINGS:
            extra[field] = raw.get(field)
        extra.update(human_z or {})
    else:
        intent = math_intent(raw)
        extra["intent_note"] = MATH_INTENT_NOTE
        extra["overall_rating"] = raw.get("overall_rating")
    prefix = "doc" if subset == "document_creation" else "math"
    return ChatRecord(
        id=f"{prefix}-{index:03d}",
        turns=turns,
        intent=intent,
        user_id=None if worker is None else str(worker),
        extra=extra,
    )


def z_normalise(value: float, pool: Sequence[float]) -> float:
    """(value - mean) / sample stdev of `pool`; 0 when the pool has fewer than 2 values or no spread
    (SimulatorArena's `z_normalize`)."""
    if len(pool) < 2:
        return 0.0
    spread = statistics.stdev(pool)
    return 0.0 if spread == 0 else (value - statistics.mean(pool)) / spread


def human_z_scores(records: Sequence[Any]) -> list[dict[str, float]]:
    """Per record, each rating z-normalised within its worker (workers with < 3 ratings pooled), as
    `human_z_interaction` / `human_z_document`; records without a numeric rating get no key for it."""
    by_worker: dict[str, dict[str, list[float]]] = {}
    for raw in records:
        if not isinstance(raw, dict):
            continue
        for field in RATINGS:
            if isinstance(raw.get(field), int | float):
                by_worker.setdefault(str(raw.get("workerId")), {}).setdefault(field, []).append(
                    float(raw[field])
                )
    pooled: dict[str, list[float]] = {field: [] for field in RATINGS}
    for ratings in by_worker.values():
        for field in RATINGS:
            if len(ratings.get(RATINGS[0], [])) < MIN_RATINGS_PER_WORKER:
                pooled[field] += ratings.get(field, [])
    out: list[dict[str, float]] = []
    for raw in records:
        z: dict[str, float] = {}
        if isinstance(raw, dict):
            own = by_worker.get(str(raw.get("workerId")), {})
            for field in RATINGS:
                if isinstance(raw.get(field), int | float):
                    pool = (
                        own.get(field, [])
                        if len(own.get(RATINGS[0], [])) >= MIN_RATINGS_PER_WORKER
                        else pooled[field]
                    )
                    z[f"human_z_{field.split('_')[1]}"] = z_normalise(float(raw[field]), pool)
        out.append(z)
    return out


def cache_dir() -> Path:
    """Where downloads are kept: `$USERLM_PLUGIN_CACHE`, else the platform's user cache folder."""
    configured = os.environ.get("USERLM_PLUGIN_CACHE")
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("userlm_plugin"))


DOWNLOAD_TIMEOUT_S = 30.0


def download(subset: Subset, commit: str = COMMIT, files: dict[str, ArenaFile] | None = None) -> Path:
    """The SimulatorArena file of `subset`, from the cache or downloaded from GitHub at `commit` (SHA-256 checked).

    Offline, or when GitHub does not answer within `DOWNLOAD_TIMEOUT_S`, a one-line `UsageError` says to pass a
    local copy with `-T data=`."""
    spec = (files or FILES)[subset]
    target = cache_dir() / "simulatorarena" / commit / spec.name
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == spec.sha256:
        return target
    import httpx

    url = spec.url(commit)
    try:
        response = httpx.get(url, timeout=DOWNLOAD_TIMEOUT_S, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPError as error:
        raise UsageError(
            f"-T source=simulatorarena: cannot download {url} ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:120] if str(error) else 'no details'}); offline, pass a local copy of "
            f"{spec.name} with -T data=<path>"
        ) from error
    digest = hashlib.sha256(response.content).hexdigest()
    if digest != spec.sha256:
        raise UsageError(
            f"-T source=simulatorarena: {url} has SHA-256 {digest[:16]}…, not the pinned {spec.sha256[:16]}…; "
            "pass a copy you trust with -T data=<path>"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(response.content)
    partial.replace(target)  # atomic: a killed download never leaves a truncated cache file
    return target
