"""Read one Inspect log into a `RunSummary`: what was run (task, model, setting, simulator, data) and the
per-sample facts a comparison needs (scores per sample and epoch, turns, cost).

Only Inspect's public log API is used (`read_eval_log`, `read_eval_log_samples`), so the report works on
any log directory, including ones made by `inspect eval-set` with several `--model` values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..providers.credentials import redact_url
from ..records import conversation_from_store

SINGLE_TURN = "single-turn"
SIMULATED = "simulated"

WRAP_METADATA_KEY = "userlm_wrap"  # same value as userlm_plugin.wrap.WRAP_METADATA_KEY (kept import-light)

SIMULATION_ARGS = frozenset({"simulator", "max_turns", "user_model", "intent", "allow", "setting", "task"})
"""Task args that configure the simulation (or name the wrapped task), not the underlying eval."""


@dataclass
class RunSummary:
    """One log, reduced to what `build_comparison` needs."""

    log: str
    task: str
    """`log.eval.task` as logged (e.g. `gsm8k+simulated_user`)."""
    base_task: str
    """The eval being compared across settings: the wrapped task for `simulate` runs, else `task`."""
    model: str
    """What the table calls the model: its name, plus what tells two runs of one name apart (`model_path`
    folder, server address, served model), e.g. `hf/local (smollm2-135m-instruct)`."""
    setting: str
    simulated: bool
    scorer: str
    scores: dict[str, list[float]]
    """Sample id -> scores (0..100), one per epoch."""
    user_turns: list[int]
    """Per scored conversation: simulated user turns (1 for single-turn runs)."""
    assistant_turns: list[int]
    cost: float | None
    """Assistant (model under test) cost in USD, None when no provider reported one."""
    user_cost: float | None
    """Simulated user (role `user`) cost in USD."""
    simulator: dict[str, Any]
    """Simulator identity (name, settings, role model, simulation task args); {} for single-turn runs."""
    dataset: dict[str, Any]
    """Dataset identity (name, location, task version, any revision)."""
    eval_args: dict[str, Any]
    """Task args of the underlying eval (simulation args removed)."""
    epochs: int
    created: str
    errors: int = 0
    notes: list[str] = field(default_factory=list)
    model_identity: dict[str, Any] = field(default_factory=dict)
    """The model's name and the args that make it a different model (`MODEL_IDENTITY_ARGS`)."""

    @property
    def simulator_name(self) -> str:
        """The simulator's name(s) for tables ("" for single-turn runs)."""
        return ", ".join(self.simulator.get("simulator", []))

    @property
    def sample_ids(self) -> frozenset[str]:
        return frozenset(self.scores)


def _canonical(value: Any) -> Any:
    """JSON-normal form, so dicts from different sources compare equal when their content does."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


DEFAULT_SCORE_KEY = "correct"
"""Key read from dict-valued scores by default: this project's sharded-eval scorers return
{"correct", "turns", "ended_correct"} (userlm_plugin.scoring.reliability.CORRECT)."""


def _score_value(value: Any, scorer: str, key: str | None) -> float:
    from inspect_ai.scorer import value_to_float

    if isinstance(value, dict):
        wanted = key or DEFAULT_SCORE_KEY
        if wanted in value:
            value = value[wanted]
        elif key is None and len(numeric := [v for v in value.values() if isinstance(v, int | float)]) == 1:
            value = numeric[0]
        else:
            raise ValueError(
                f"scorer '{scorer}' returns a dict with keys {sorted(value)} and no '{wanted}'; "
                "choose the key to compare on with --score-key KEY."
            )
    elif key is not None:
        raise ValueError(f"--score-key {key!r} given but scorer '{scorer}' returns a single value.")
    return 100.0 * value_to_float()(value)


def _role_usage_cost(usage: Any) -> float | None:
    return None if usage is None else usage.total_cost


def _user_role(log: Any) -> Any:
    roles = log.eval.model_roles or {}
    user = roles.get("user")
    if user is None:
        return None
    configs = user if isinstance(user, list) else [user]
    return [
        {
            "model": c.model,
            "args": c.args,
            "config": c.config.model_dump(exclude_none=True),
            "base_url": _shown_url(c.base_url),
        }
        for c in configs
    ]


MODEL_IDENTITY_ARGS = ("model_path", "model_name", "served_model_name", "api_base", "base_url")
"""`-M` args that make two runs of one model name different models (weights folder, server, served model)."""


def model_identity(log: Any) -> dict[str, Any]:
    """The model under test: its name, the identity args it was given, and `--model-base-url`."""
    args = log.eval.model_args or {}
    identity = {
        "model": log.eval.model,
        **{k: _shown_url(args[k]) for k in MODEL_IDENTITY_ARGS if args.get(k) is not None},
    }
    if log.eval.model_base_url:
        identity["base_url"] = _shown_url(log.eval.model_base_url)
    return _canonical(identity)


def _shown_url(value: Any) -> Any:
    """A URL as reports show it: without userinfo or query values, even from a log written before they were kept
    out (docs/grading.md#secrets-in-logs)."""
    return redact_url(value) if isinstance(value, str) and "://" in value else value


def model_label(identity: dict[str, Any], full: bool = False) -> str:
    """`name (qualifiers)`: the weights folder's name (or path, with `full`), server address, served model."""
    from pathlib import PurePath
    from urllib.parse import urlparse

    qualifiers = []
    for key, value in identity.items():
        if key == "model":
            continue
        text = str(value)
        if key == "model_path" and not full:
            text = PurePath(text.rstrip("/")).name or text
        elif key in ("api_base", "base_url"):
            text = urlparse(text).netloc.rsplit("@", 1)[-1] or text
        qualifiers.append(text)
    return identity["model"] + (f" ({', '.join(qualifiers)})" if qualifiers else "")


def _dataset_identity(log: Any) -> dict[str, Any]:
    ds = log.eval.dataset
    revisions = {
        k: v
        for source in (log.eval.task_args or {}, log.eval.metadata or {})
        for k, v in source.items()
        if "revision" in k.lower()
    }
    return _canonical(
        {
            "name": ds.name,
            "location": ds.location,
            "task_version": log.eval.task_version,
            "revision": revisions,
        }
    )


def load_run(path: str, scorer: str | None = None, score_key: str | None = None) -> RunSummary:
    """Summarize the log at `path`.

    `scorer`: which score to use (default: the log's first scorer). `score_key`: for dict-valued scores,
    which key (default "correct", else the only numeric one). Scores are scaled to 0..100.
    """
    from inspect_ai.log import read_eval_log, read_eval_log_samples

    header = read_eval_log(path, header_only=True)
    if header.status != "success":
        raise ValueError(f"status '{header.status}' (only successful runs are compared)")
    results = header.results
    names = [s.name for s in (results.scores if results else [])]

    scores: dict[str, list[float]] = {}
    user_turns: list[int] = []
    assistant_turns: list[int] = []
    sim_names: set[str] = set()
    sim_configs: list[Any] = []
    simulated = False
    errors = 0
    for sample in read_eval_log_samples(path, all_samples_required=False):
        if scorer is None:  # the headline scorer, else (a scorer with no metrics) the sample's first
            scorer = names[0] if names else next(iter(sample.scores or {}), None)
        elif not names and scorer not in (sample.scores or {}):
            names = list(sample.scores or {})
        score = (sample.scores or {}).get(scorer) if scorer else None
        if sample.error is not None or score is None:
            errors += 1
            continue
        scores.setdefault(str(sample.id), []).append(_score_value(score.value, scorer, score_key))
        conversation = conversation_from_store(dict(sample.store or {}))
        if conversation.turns:
            simulated = True
            user_turns.append(conversation.user_turns)
            assistant_turns.append(conversation.assistant_turns)
            sim_names.add(conversation.simulator)
            config = _canonical(conversation.simulator_config)
            if config not in sim_configs:
                sim_configs.append(config)
        else:
            user_turns.append(sum(1 for m in sample.messages if m.role == "user"))
            assistant_turns.append(sum(1 for m in sample.messages if m.role == "assistant"))

    if not scores:
        if scorer is not None and names and scorer not in names:
            raise ValueError(f"no scorer '{scorer}' (it has {names})")
        raise ValueError(f"no scored samples{f' for scorer {scorer!r}' if scorer else ''}")
    task_args = dict(header.eval.task_args or {})
    metadata = dict(header.eval.metadata or {})
    wrap = metadata.get(WRAP_METADATA_KEY) or {}
    # unlabelled simulated runs are labelled by their simulator, so two simulators never share a row silently
    default_setting = (", ".join(sorted(sim_names)) or SIMULATED) if simulated else SINGLE_TURN
    setting = task_args.get("setting") or wrap.get("setting") or default_setting
    base_task = wrap.get("wrapped_task") or header.eval.task
    # the underlying eval's args: what the wrapper recorded (defaults included), else the run's own task args
    eval_args = wrap.get("task_args", {k: v for k, v in task_args.items() if k not in SIMULATION_ARGS})
    notes: list[str] = []
    simulator: dict[str, Any] = {}
    if simulated:
        simulator = _canonical(
            {
                "simulator": sorted(sim_names),
                "simulator_config": sim_configs,
                "user_role": _user_role(header),
                "simulation_args": {k: v for k, v in task_args.items() if k in SIMULATION_ARGS - {"setting"}},
                "wrap": {k: wrap[k] for k in ("simulator", "max_turns", "intent_source") if k in wrap},
            }
        )
        if len(sim_names) > 1 or len(sim_configs) > 1:
            notes.append(f"samples disagree on the simulator within this run: {sorted(sim_names)}")

    stats = header.stats
    model = header.eval.model
    usage = stats.model_usage.get(model) if stats else None
    cost = usage.total_cost if usage is not None else None
    user_cost = _role_usage_cost(stats.role_usage.get("user")) if stats else None
    role = _user_role(header)
    if cost is not None and user_cost is not None and role and any(r["model"] == model for r in role):
        cost -= user_cost  # the user role ran on the same model: model_usage holds both
    epochs = header.eval.config.epochs or 1
    identity = model_identity(header)
    return RunSummary(
        log=path,
        task=header.eval.task,
        base_task=base_task,
        model=model_label(identity),
        model_identity=identity,
        setting=str(setting),
        simulated=simulated,
        scorer=scorer,
        scores=scores,
        user_turns=user_turns,
        assistant_turns=assistant_turns,
        cost=cost,
        user_cost=user_cost,
        simulator=simulator,
        dataset=_dataset_identity(header),
        eval_args=_canonical(eval_args),
        epochs=epochs,
        created=header.eval.created,
        errors=errors,
        notes=notes,
    )


def load_runs(
    log_dir: str, scorer: str | None = None, score_key: str | None = None
) -> tuple[list[RunSummary], list[tuple[str, str]]]:
    """Every log under `log_dir` (recursively): (runs, skipped [(log, why)])."""
    from inspect_ai.log import list_eval_logs

    from ..errors import ConfigError

    if not Path(log_dir).is_dir():
        raise ConfigError(f"LOG_DIR {log_dir} does not exist (or is not a folder).")
    runs: list[RunSummary] = []
    skipped: list[tuple[str, str]] = []
    for info in list_eval_logs(str(log_dir), recursive=True, descending=False):
        path = info.name.removeprefix("file://")
        try:
            runs.append(load_run(path, scorer=scorer, score_key=score_key))
        except ValueError as ex:
            skipped.append((path, str(ex)))
    _disambiguate_labels(runs)
    return runs, skipped


def _disambiguate_labels(runs: list[RunSummary]) -> None:
    """Two different models must never share a label (their rows would merge): fall back to full paths."""
    identities: dict[str, set[str]] = {}
    for run in runs:
        identities.setdefault(run.model, set()).add(json.dumps(run.model_identity, sort_keys=True))
    for run in runs:
        if len(identities[run.model]) > 1:
            run.model = model_label(run.model_identity, full=True)
