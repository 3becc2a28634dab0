"""Replay the simulated user turns of one run against another assistant (a paired comparison).

Why: two assistants evaluated with a *live* simulator see different users (the simulator samples at
T=1.0 and reacts to each assistant), so part of the gap between them is simulator variance. Replaying the
user turns frozen from one run gives every assistant the very same user messages, sample by sample and
epoch by epoch, which removes that variance.

When it is valid (non-adaptive replay): the frozen turns do not react to the new assistant. The paired
comparison measures "same user messages, different assistant" and is sound when the user turns do not
depend much on what the assistant said: scripted or sharded reveals (one shard per turn), instructions
that are given piece by piece regardless of the replies, or a first-turn-only comparison.

When it is not: when the user adapts to the assistant: answering a clarifying question, correcting a
wrong answer, ending early because the answer was right (LiC's stop on a correct answer, `stop_when`),
or UserLM's end-of-conversation decision. Then a replayed turn can answer a question the new assistant
never asked, and the conversation length is the original's, not the new one's. Use a live simulator
(with several epochs) for such claims, and replay only as a variance-free check of the same claim.
The replayed run records where each turn came from (`metadata.replayed_from`) so reports can tell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from .._paths import resolve_user_path
from ..errors import UsageError
from ..records import conversation_from_store
from ..turns import EndReason, UserTurn
from ._common import ConfiguredSimulator
from .base import SimulationContext

OnMissing = Literal["error", "end"]


class ReplayConfig(BaseModel):
    """Settings of `replay_user` (also its preset schema)."""

    model_config = ConfigDict(extra="forbid")

    log: str
    """Path of the Inspect log (.eval or .json) whose simulated user turns are replayed."""
    on_missing: OnMissing = "error"
    """A sample/epoch absent from the log: "error" (default) or "end" the conversation at once."""
    match_epoch: bool = True
    """Replay epoch e's turns at epoch e. False: always replay the first recorded epoch of the sample."""


class FrozenConversation(BaseModel):
    """The accepted user turns of one recorded conversation, in order."""

    texts: list[str]
    shard_ids: list[int | None]
    end_reason: EndReason | None = None
    stop_reason: str | None = None
    simulator: str = ""


class MissingLogError(UsageError, FileNotFoundError):
    """The log to replay does not exist (a `FileNotFoundError` too, for callers that catch that)."""


def _read_log(path: Path) -> Any:
    """The log, or one line naming the file when it cannot be read: a truncated zip, a log still being written,
    a JSON file that is not an Inspect log. Whatever Inspect's reader raises, the reason is the file, so the
    one-line error replaces its traceback (hundreds of lines from inside the zip and JSON readers)."""
    from inspect_ai.log import read_eval_log

    try:
        return read_eval_log(str(path))
    except Exception as error:  # any failure to parse means the file is not a readable log
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        raise UsageError(
            f"replay_user: {path} is not a readable Inspect log ({type(error).__name__}"
            f"{': ' + reason if reason else ''}). Is it truncated or still being written? Replay a finished "
            "log (.eval or .json) from `inspect eval`."
        ) from None


def _key(sample_id: Any) -> str:
    # sample ids may be int in one place and str in another (CLI --sample-id, JSON logs)
    return str(sample_id)


def load_frozen_turns(log: str | Path) -> tuple[dict[tuple[str, int], FrozenConversation], dict[str, Any]]:
    """Read every sample's `Conversation` record from an Inspect log: {(sample_id, epoch): turns}.

    Also returns the source run's identity (task, model, simulator, simulator_config) for the replay's
    own config, so logs and reports show what was replayed.
    """
    path = resolve_user_path(log)
    if not path.is_file():
        raise MissingLogError(f"replay_user(log={str(log)!r}): no such log file ({path}).")
    eval_log = _read_log(path)
    frozen: dict[tuple[str, int], FrozenConversation] = {}
    simulators: set[str] = set()
    configs: list[dict] = []
    for sample in eval_log.samples or []:
        conversation = conversation_from_store(dict(sample.store or {}))
        if not conversation.turns:
            continue
        accepted = [t for t in conversation.turns if t.text is not None]
        ended = next((t.end_reason for t in conversation.turns if t.end_reason is not None), None)
        frozen[(_key(sample.id), sample.epoch)] = FrozenConversation(
            texts=[t.text for t in accepted if t.text is not None],
            shard_ids=[t.shard_id for t in accepted],
            end_reason=ended or conversation.end_reason,
            stop_reason=str(conversation.stop_reason) if conversation.stop_reason else None,
            simulator=conversation.simulator,
        )
        simulators.add(conversation.simulator)
        if conversation.simulator_config and conversation.simulator_config not in configs:
            configs.append(conversation.simulator_config)
    if not frozen:
        raise UsageError(
            f"replay_user(log={str(log)!r}): the log has no simulated conversations (no `Conversation` turns "
            "in any sample store). Replay a log made with the simulated_user solver."
        )
    source = {
        "log": str(path),
        "task": eval_log.eval.task,
        "model": eval_log.eval.model,
        "simulator": sorted(simulators)[0] if len(simulators) == 1 else sorted(simulators),
        "simulator_config": configs[0] if len(configs) == 1 else configs,
    }
    return frozen, source


class ReplayUser(ConfiguredSimulator[ReplayConfig]):
    """Sends, at user turn n of sample s / epoch e, the n-th accepted user turn recorded for (s, e)."""

    name = "replay"
    needs_intent = False

    def __init__(self, config: ReplayConfig) -> None:
        super().__init__(config)
        self.turns, self.source = load_frozen_turns(config.log)

    def describe(self) -> dict[str, Any]:
        """The replay's settings plus the source run's simulator, so reports compare like with like."""
        return {**super().describe(), "source": self.source}

    def _lookup(self, ctx: SimulationContext) -> FrozenConversation | None:
        sid = _key(ctx.sample_id)
        epoch = _current_epoch(default=getattr(ctx, "epoch", 1))
        if self.config.match_epoch:
            return self.turns.get((sid, epoch))
        epochs = sorted(e for (s, e) in self.turns if s == sid)
        return self.turns[(sid, epochs[0])] if epochs else None

    async def next_turn(self, ctx: SimulationContext) -> UserTurn:
        frozen = self._lookup(ctx)
        if frozen is None:
            if self.config.on_missing == "end":
                return UserTurn.end(EndReason.SCRIPT_EXHAUSTED, metadata={"replay_missing": True})
            known = sorted({s for s, _ in self.turns})[:10]
            raise KeyError(
                f"replay_user: sample {ctx.sample_id!r} epoch {_current_epoch(getattr(ctx, 'epoch', 1))} is not in "
                f"{self.config.log} (it has samples {known}...). Run the same dataset/epochs, or pass "
                "on_missing='end'."
            )
        index = ctx.turn - 1
        origin = {
            "replayed_from": self.config.log,
            "source_turn": ctx.turn,
            "source_simulator": frozen.simulator,
        }
        if index >= len(frozen.texts):
            # the original conversation had no more user turns: say why it stopped there
            return UserTurn.end(
                EndReason.SCRIPT_EXHAUSTED,
                metadata={
                    **origin,
                    "source_end_reason": str(frozen.end_reason) if frozen.end_reason else None,
                    "source_stop_reason": frozen.stop_reason,
                },
            )
        return UserTurn(text=frozen.texts[index], shard_id=frozen.shard_ids[index], metadata=origin)


def _current_epoch(default: int = 1) -> int:
    """Epoch of the running sample (Inspect's own sample state wins), else `default` (ctx.epoch)."""
    from .._inspect_compat import sample_state

    state = sample_state()
    return state.epoch if state is not None else default


def replay_user(log: str | Path, on_missing: OnMissing = "error", match_epoch: bool = True) -> ReplayUser:
    """A user that repeats, turn for turn, the simulated user of an earlier run (see module doc for validity).

    Args:
        log: The Inspect log (.eval/.json) of a run made with `simulated_user`.
        on_missing: What to do for a sample/epoch the log lacks: "error" (default) or "end" at once.
        match_epoch: Replay epoch e's turns at epoch e (default); False: the sample's first recorded epoch.
    """
    return ReplayUser(ReplayConfig(**{**locals(), "log": str(log)}))
