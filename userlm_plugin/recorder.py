"""The one writer of a simulated conversation's record: `ConversationRecorder` (start / user turn / assistant turn /
stop).

Both the `simulated_user` solver and the simulator-quality probe record through it, so every log has the same
store record, sample summary, span labels and transcript text, and there is one rule for what a turn record
counts (a record with text is a sent user turn; its `shard_id` joins the revealed shards once).

What it writes, as it happens:
- the sample store's `Conversation` record (records.py), rewritten after every turn, so a limit that aborts the
  loop loses nothing;
- `state.metadata["simulated_user"]`, the conversation's summary, stop reason first, and the same as one line of
  text in `state.metadata["simulated_user_stop"]`; both lead the sample's metadata (the viewer's Info tab);
- a transcript span "user turn N (<simulator>)" (type `simulated_user`) per turn, and inside it a Markdown info
  event saying who wrote the turn, the drafts the guardrails rejected and why, and whether they gave up
  (`guardrails_exhausted`); a final info event says why the conversation stopped;
- Inspect's task display counter "simulated user turns", so a long conversation shows progress before its
  sample completes; Inspect's plain display (`--display plain`) shows no counters, so there the same count is
  printed as a line per turn (a 9-minute run otherwise showed `Samples: 0/1` throughout).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from inspect_ai.log import transcript
from inspect_ai.solver import TaskState
from inspect_ai.util import Store, display_counter, display_type, span

from .records import Conversation
from .turns import EndReason, HumanReference, StopReason, TurnRecord

SUMMARY_KEY = "simulated_user"
"""`state.metadata` key of the conversation summary (stop reason, turn counts, guardrail activity, simulator)."""

SUMMARY_LINE_KEY = "simulated_user_stop"
"""`state.metadata` key of the same summary as one line of text: a scalar, so the viewer shows it without a click
and Inspect keeps it in sample summaries (which drop nested metadata)."""

QUESTION_KEY = "question"
"""Turn-record metadata key of the question an agent asked through `ask_user` (that turn answers it)."""

REPLY_KEY = "user_reply"
"""Turn-record metadata key of the user's own words when the sent text is a form answer (`ask_user`)."""

PROGRESS_CAPTION = "simulated user turns"
"""Caption of the task display counter that moves with every simulated user turn."""

_turns_written = 0
"""Simulated user turns recorded in this process (the display counter's value)."""


class ConversationRecorder:
    """Keeps a sample's `Conversation` record, its summary and its transcript current, turn by turn.

    Reads come from a local mirror and changes go straight to the record's store keys (`Conversation:<field>`):
    going through the `StoreModel` re-validates the whole record, `turns` list included, on every read and
    write, which would make each turn cost O(turns so far). What is written comes from validated `TurnRecord`s.
    """

    def __init__(
        self,
        store: Store,
        simulator: str,
        config: dict[str, Any] | None = None,
        intent: str = "",
        summary: dict[str, Any] | None = None,
    ) -> None:
        """Start a record in `store` (a sample's store, or a bare `Store` outside a sample). `summary`: the
        sample metadata dict that receives the summary under `SUMMARY_KEY` (None: no summary)."""
        self.store, self.simulator, self._summary_target = store, simulator, summary
        self.turns: list[dict[str, Any]] = []
        self.user_turns = self.assistant_turns = self.rejected = self.exhausted = 0
        self.revealed: list[int] = []
        self.stop_reason: StopReason | None = None
        self.end_reason: EndReason | None = None
        conv = Conversation(store=store)  # writes the record's defaults into the store
        conv.simulator, conv.simulator_config, conv.intent = simulator, dict(config or {}), intent
        conv.turns, conv.user_turns, conv.assistant_turns, conv.revealed_shards = [], 0, 0, []
        conv.stop_reason = conv.end_reason = None
        self._summarize()
        if (
            summary is not None
        ):  # the summary leads the sample's metadata (in place: it is the state's own dict)
            ordered = {k: summary.pop(k) for k in (SUMMARY_LINE_KEY, SUMMARY_KEY)} | summary
            summary.clear()
            summary.update(ordered)

    @classmethod
    def start(
        cls, state: TaskState, simulator: str, config: dict[str, Any], intent: str
    ) -> ConversationRecorder:
        """The recorder of a running sample: its store, with the summary in `state.metadata`."""
        return cls(state.store, simulator, config, intent, summary=state.metadata)

    def turn_span(self, index: int) -> AbstractAsyncContextManager[None]:
        """The transcript span that holds user turn `index`: the simulator's model calls and the turn's event."""
        return span(f"user turn {index} ({self.simulator})", type="simulated_user")

    def user_turn(self, record: TurnRecord, human: HumanReference | None = None) -> None:
        """Record one simulated user turn (sent, or the user's decision to end); `human`: what the real person
        wrote at this point, shown beside it in the transcript (the human-fidelity eval)."""
        global _turns_written
        self.turns.append(record.model_dump(mode="json"))
        self._set("turns", [*self.turns])
        self.rejected += len(record.rejected)
        self.exhausted += int(record.guardrails_exhausted)
        if record.text is not None:
            self.user_turns += 1
            self._set("user_turns", self.user_turns)
        if record.shard_id is not None and record.shard_id not in self.revealed:
            self.revealed = [*self.revealed, record.shard_id]
            self._set("revealed_shards", [*self.revealed])
        if record.end_reason is not None:
            self.end_reason = record.end_reason
            self._set("end_reason", self.end_reason)
        self._summarize()
        transcript().info(turn_markdown(record, human), source=record.simulator)
        _turns_written += 1
        display_counter(PROGRESS_CAPTION, str(_turns_written))
        if display_type() == "plain":  # the plain display drops counters: say it as a line
            ended = ", the user ended" if record.end_reason is not None else ""
            print(
                f"{PROGRESS_CAPTION}: {_turns_written} (user turn {record.index}{ended}, {record.simulator})",
                flush=True,
            )

    def assistant_turn(self) -> None:
        self.assistant_turns += 1
        self._set("assistant_turns", self.assistant_turns)
        self._summarize()

    def stop(self, reason: StopReason, limit: str | None = None) -> None:
        """Record why the conversation stopped (`limit`: which Inspect limit, when one stopped it)."""
        self.stop_reason = reason
        self._set("stop_reason", reason)
        summary = self._summarize()
        if limit:
            summary["limit"] = limit
        transcript().info(stop_markdown(summary), source=SUMMARY_KEY)

    def _set(self, field: str, value: Any) -> None:
        self.store.set(f"{Conversation.__name__}:{field}", value)

    def _summarize(self) -> dict[str, Any]:
        summary = {
            "stop_reason": self.stop_reason,
            "end_reason": self.end_reason,
            "user_turns": self.user_turns,
            "assistant_turns": self.assistant_turns,
            "rejected_drafts": self.rejected,
            "guardrails_exhausted": self.exhausted,
            "revealed_shards": [*self.revealed],
            "simulator": self.simulator,
        }
        if self._summary_target is not None:
            self._summary_target[SUMMARY_LINE_KEY] = summary_line(summary)
            self._summary_target[SUMMARY_KEY] = summary
        return summary


def _quote(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cell(text: str | None, ended: str) -> str:
    return ended if text is None else "“" + _quote(text, 600).replace("|", "\\|") + "”"


def side_by_side(record: TurnRecord, human: HumanReference) -> str:
    """The person's turn beside the simulated one, as a two-column Markdown table (with their lengths)."""
    ended = "*ended the conversation*"
    words = ["—" if t is None else str(len(t.split())) for t in (human.text, record.text)]
    return "\n".join(
        [
            f"| | human (reference) | simulated (`{record.simulator}`) |",
            "|---|---|---|",
            f"| turn {record.index} | {_cell(human.text, ended)} | {_cell(record.text, ended)} |",
            f"| words | {words[0]} | {words[1]} |",
        ]
    )


def turn_markdown(record: TurnRecord, human: HumanReference | None = None) -> str:
    """One turn as the transcript shows it: who wrote it, what was sent, every rejected draft and why, and (with
    `human`) the real person's turn at the same point beside it."""
    head = f"**User turn {record.index}** by `{record.simulator}`"
    notes = []
    if record.retries:
        notes.append(f"{record.retries} resample(s)")
    if record.guardrails_exhausted:
        notes.append("**guardrails exhausted**: every draft was rejected, the best one was sent anyway")
    if record.role_break:
        notes.append("**role break**: the sent text still reads as an assistant reply")
    if record.shard_id is not None:
        notes.append(f"reveals shard {record.shard_id}")
    lines = [head + (" · " + " · ".join(notes) if notes else "")]
    if (question := record.metadata.get(QUESTION_KEY)) is not None:  # an answer to the agent's ask_user
        lines.append(f"Asked by the agent (`ask_user`): “{_quote(str(question))}”")
        if (reply := record.metadata.get(REPLY_KEY)) is not None:
            lines.append(f"The user said: “{_quote(str(reply))}”")
    if human is not None:
        lines.append(side_by_side(record, human))
        if record.text is None:
            lines.append(f"The simulator ended the conversation (`{record.end_reason}`).")
    elif record.text is not None:
        lines.append(f"Sent: “{_quote(record.text)}”")
    else:
        lines.append(f"*The user ended the conversation* (`{record.end_reason}`).")
    if record.rejected:
        lines.append(f"Rejected drafts ({len(record.rejected)}):")
        for i, draft in enumerate(record.rejected, 1):
            why = f"`{draft.reason}`" + (f" ({draft.detail})" if draft.detail else "")
            lines.append(f"{i}. {why}: “{_quote(draft.text, 200)}”")
    facts = {
        k: v
        for k, v in record.metadata.items()
        if isinstance(v, str | int | float | bool) and k not in (QUESTION_KEY, REPLY_KEY)
    }
    if facts:
        lines.append(" · ".join(f"{k}: `{v}`" for k, v in facts.items()))
    return "\n\n".join(lines)


def summary_line(summary: dict[str, Any]) -> str:
    """E.g. "max_turns · 3 user turns · 1 rejected draft · guardrails exhausted on 0 turns" ("running" until
    the conversation stops)."""
    stop = str(summary["stop_reason"]) if summary["stop_reason"] else "running"
    if summary["end_reason"]:
        stop += f" ({summary['end_reason']})"
    return (
        f"{stop} · {summary['user_turns']} user turns · {summary['rejected_drafts']} rejected drafts · "
        f"guardrails exhausted on {summary['guardrails_exhausted']} turns"
    )


def stop_markdown(summary: dict[str, Any]) -> str:
    """The conversation's end as the transcript shows it."""
    why = f"`{summary['stop_reason']}`"
    if summary.get("end_reason"):
        why += f" (`{summary['end_reason']}`)"
    if summary.get("limit"):
        why += f", {summary['limit']} limit"
    parts = [
        f"**Conversation stopped**: {why}",
        f"{summary['user_turns']} user turn(s), {summary['assistant_turns']} assistant turn(s), "
        f"{summary['rejected_drafts']} rejected draft(s), guardrails exhausted on {summary['guardrails_exhausted']} "
        f"turn(s); simulator `{summary['simulator']}`",
    ]
    return "\n\n".join(parts)
