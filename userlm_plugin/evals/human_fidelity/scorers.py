"""The human-fidelity scorers: the simulator against the people, on the same prefixes (docs/fidelity.md#metrics).

* `human_fidelity`: per conversation, every replayed position with both turns and their style features
  (`Score.metadata["positions"]`); the metrics pool all positions of the run (summary.py): length and its JSD,
  style, intent leakage, lexical similarity, termination P/R/F1, and the discriminator's AUROC. The corpus-level
  ones (JSD, F1, AUROC) need every sample, which is what an Inspect metric receives.
* `human_ppl` (`human_perplexity()`): user-token perplexity of the people's turns under the `user` role's local `userlm/` model,
  with and without the intent (the paper's distributional alignment; evals/user_perplexity's code).
* `guardrail_fit`: how often each User LM guardrail would reject the people's own turns, and data-driven bounds.

Metric names are short: they are the columns of Inspect's results table. `_h` = the people's value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from inspect_ai.model import get_model
from inspect_ai.scorer import Metric, SampleScore, Score, Scorer, Target, metric, scorer
from inspect_ai.solver import TaskState

from ...records import conversation_from_store
from ...runtime.guardrails import GuardrailConfig
from ...train.conversations import ChatRecord
from ...turns import RejectReason
from ..user_perplexity.task import conversation_sums, is_local_userlm, pooled_perplexity
from . import guardrail_fit as gf
from . import summary as fs
from .dataset import sample_intent
from .features import word_count
from .replay import human_turns, replay_positions


def _group(state: TaskState) -> str:
    """The discriminator's unit: the person when the data names them, else the conversation."""
    user = (state.metadata or {}).get("user_id")
    return f"user:{user}" if user else f"conversation:{state.sample_id}"


def score_positions(scores: list[SampleScore]) -> list[fs.Position]:
    """Every replayed position of the run, rebuilt from the scores' metadata."""
    rows = []
    for s in scores:
        meta = s.score.metadata or {}
        rows += [(str(meta.get("group")), row) for row in meta.get("positions") or []]
    return fs.positions(rows)


def _over_positions(summarise: Callable[[list[fs.Position]], dict[str, float | None]]) -> Metric:
    def compute(scores: list[SampleScore]) -> dict[str, float | None]:
        return summarise(score_positions(scores))

    return compute


@metric(name="fid_length", scores="unreduced")
def length_fit() -> Metric:
    """`words` / `words_h`: mean words per turn; `len_jsd`: Jensen-Shannon divergence (bits) of the binned length
    distributions (0 = same, 1 = disjoint; docs/fidelity.md#length)."""
    return _over_positions(fs.length_summary)


@metric(name="fid_style", scores="unreduced")
def style_fit() -> Metric:
    """Percent of words misspelled (`typo_pct`) and of turns that start lowercase, end without final punctuation,
    ask a question, carry a politeness marker or speak in the first person (docs/fidelity.md#style-features)."""
    return _over_positions(fs.style_summary)


@metric(name="fid_leakage", scores="unreduced")
def intent_leakage() -> Metric:
    """`leak_pct`: mean share of a turn's content words found in the intent (the paper's intent decomposition)."""
    return _over_positions(fs.leakage_summary)


@metric(name="fid_similarity", scores="unreduced")
def lexical_similarity() -> Metric:
    """`lex_f1`: mean unigram F1 of the simulated turn against the person's at the same position."""
    return _over_positions(fs.similarity_summary)


@metric(name="fid_termination", scores="unreduced")
def termination_fit() -> Metric:
    """`end_p` / `end_r` / `end_f1`: "ends here" against where the person ended, over every position."""
    return _over_positions(fs.termination_summary)


@metric(name="fid_discriminator", scores="unreduced")
def discriminator_auroc(seed: int = 0) -> Metric:
    """`auroc` with its 95% bootstrap interval (`auroc_lo`, `auroc_hi`): a classifier trained on half of the
    conversations tells human from simulated turns on the other half (0.5 = indistinguishable)."""
    return _over_positions(lambda ps: fs.discriminator_summary(ps, seed))


@scorer(
    metrics=[
        length_fit(),
        style_fit(),
        intent_leakage(),
        lexical_similarity(),
        termination_fit(),
        discriminator_auroc(),
    ]
)
def human_fidelity() -> Scorer:
    """The replayed conversation's positions, the person's turn beside the simulator's, with their features."""

    async def score(state: TaskState, target: Target) -> Score:
        # the intent the simulator saw (background included), as the recorder stored it
        intent = conversation_from_store(state.store).intent or sample_intent(state.metadata or {})
        replayed = replay_positions(state)
        rows = [fs.position_row(p.index, p.human, p.simulated, intent) for p in replayed]
        human = [p.human for p in replayed if p.human is not None]
        simulated = [p.simulated for p in replayed if p.simulated is not None and p.human is not None]
        ended_at = next((p.index for p in replayed if p.simulated is None), None)
        value: dict[str, float | int | None] = {
            "positions": len(replayed),
            "words": sum(map(word_count, simulated)) / len(simulated) if simulated else None,
            "words_h": sum(map(word_count, human)) / len(human) if human else None,
            "sim_ended_at": ended_at,
        }
        explanation = f"{len(replayed)} positions; the person ended at {len(human) + 1}, the simulator " + (
            f"first ended at {ended_at}" if ended_at else "never ended"
        )
        return Score(
            value=value,
            explanation=explanation,
            metadata={"group": _group(state), "positions": rows},
        )

    return score


# ------------------------------------------------------------------------------------------ perplexity


@metric(name="fid_perplexity", scores="unreduced")
def human_perplexity_metric() -> Metric:
    """`ppl` / `ppl_no_intent`: pooled user-token perplexity of the people's turns (the end turn included) with
    and without the intent (`evals/user_perplexity.py` also reports the turns without the end turn)."""

    def compute(scores: list[SampleScore]) -> dict[str, float | None]:
        rows: dict[str, list[dict[str, Any]]] = {"intent": [], "no_intent": []}
        for s in scores:
            for condition in rows:
                rows[condition].append((s.score.metadata or {}).get(condition) or {})
        return {
            "ppl": pooled_perplexity(rows["intent"], end=True),
            "ppl_no_intent": pooled_perplexity(rows["no_intent"], end=True),
        }

    return compute


# short names: Inspect's terminal table cuts longer ones (tests/test_human_fidelity_eval.py renders it)
@scorer(name="human_ppl", metrics=[human_perplexity_metric()])
def human_perplexity(role: str = "user") -> Scorer:
    """User-token perplexity of the sample's real user turns under the `role` model, with and without the intent.
    Defined for local `userlm/` models only; other samples say why in their explanation."""

    async def score(state: TaskState, target: Target) -> Score:
        try:
            model = get_model(role=role)
        except Exception as error:  # no such role in this run (e.g. `inspect score` on another machine)
            return Score(value={"nll_per_token": None}, explanation=f"no `{role}` model ({error})")
        if not is_local_userlm(model):
            return Score(
                value={"nll_per_token": None},
                explanation=f"perplexity needs a local userlm/ model in the `{role}` role; got {model}",
            )
        messages = state.input if isinstance(state.input, list) else []
        turns = tuple(
            {"role": m.role, "content": m.text.strip()} for m in messages if m.role in ("user", "assistant")
        )
        intent = sample_intent(state.metadata or {}) or None
        record = ChatRecord(id=str(state.sample_id), turns=turns, intent=intent)
        rows = await conversation_sums(model, record, ("intent", "no_intent"))
        with_intent = rows.get("intent", {})
        tokens = with_intent.get("tokens_turns", 0) + with_intent.get("tokens_end", 0)
        nll = with_intent.get("nll_turns", 0.0) + with_intent.get("nll_end", 0.0)
        return Score(
            value={"nll_per_token": nll / tokens if tokens else None},
            explanation=", ".join(
                f"{c}: {r['skipped']}"
                if "skipped" in r
                else f"{c}: {r['tokens_turns'] + r['tokens_end']} tokens"
                for c, r in rows.items()
            ),
            metadata=rows,
        )

    return score


# ------------------------------------------------------------------------------------------ guardrails


@metric(name="fid_guardrails", scores="unreduced")
def guardrail_fit_metric() -> Metric:
    """Percent of the people's turns each guardrail would reject (`g_short_pct`, `g_long_pct`, `g_first_pct`,
    `g_repeat_pct`, `g_any_pct`), percent of their real ends the end ban would refuse (`g_end_pct`), and length
    bounds that keep 95% of their turns (`rec_min_words`, `rec_max_words`)."""

    def compute(scores: list[SampleScore]) -> dict[str, float | None]:
        checks: list[gf.HumanTurnCheck] = []
        ends: list[bool] = []
        seen: set[str] = set()
        for s in scores:
            meta = s.score.metadata or {}
            key = str(s.sample_id)
            if key in seen:  # epochs repeat the same human turns: count each once
                continue
            seen.add(key)
            for c in meta.get("checks") or []:
                repetition = RejectReason(c["repetition"]) if c.get("repetition") else None
                checks.append(gf.HumanTurnCheck(**{**c, "repetition": repetition}))
            if meta.get("end_rejected") is not None:
                ends.append(bool(meta["end_rejected"]))
        return gf.guardrail_summary(checks, ends)

    return compute


@scorer(metrics=[guardrail_fit_metric()])
def guardrail_fit(guardrails: dict[str, Any] | None = None) -> Scorer:
    """Each human turn of the sample against the User LM's guardrails (the paper's defaults, with `guardrails`
    overrides as `-M`/preset keys), in its real context."""
    config = GuardrailConfig().merged(guardrails)

    async def score(state: TaskState, target: Target) -> Score:
        messages = state.input if isinstance(state.input, list) else []
        turns = [{"role": m.role, "content": m.text} for m in messages if m.role in ("user", "assistant")]
        checks = gf.check_human_turns(sample_intent(state.metadata or {}), turns, config)
        end = gf.end_rejected(len(human_turns(state)), config)
        rejected = [c for c in checks if c.too_short or c.too_long or c.first_word or c.repetition]
        return Score(
            value={"rejected_turns": len(rejected), "turns": len(checks), "end_rejected": end},
            explanation=f"{len(rejected)} of {len(checks)} human turns would be rejected; the real end "
            + ("would be refused" if end else "is allowed"),
            metadata={
                "checks": [
                    {**c.__dict__, "repetition": None if c.repetition is None else str(c.repetition)}
                    for c in checks
                ],
                "end_rejected": end,
            },
        )

    return score
