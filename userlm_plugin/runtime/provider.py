"""`userlm/<hub id or folder>`: a User LM served in-process to Inspect, with the paper's guardrails.

    inspect eval ... --model-role user=userlm/microsoft/UserLM-8b -M max_batch_size=32

Each `generate` call: validate the input (intent = system message, real roles), render the model's own template
(ending by opening a user turn), then draft -> check -> resample through the batching engine until a draft passes
the guardrails or `max_retries` runs out. The result is a `ModelOutput` whose completion is the next user turn
("" when the user ended the conversation), with `usage` summed over every draft generated, and
`metadata["userlm"]` carrying the `UserTurn` fields (end_reason, rejected, retries, guardrails_exhausted) plus the
settings used. The `ModelCall` holds the rendered prompt, parameters and every draft with its decision.
"""

from __future__ import annotations

import dataclasses
import random
import time
from typing import Any, Literal

from inspect_ai.model import (
    ChatMessage,
    GenerateConfig,
    ModelAPI,
    ModelCall,
    ModelOutput,
    ModelUsage,
)
from inspect_ai.tool import ToolChoice, ToolInfo
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..turns import USERLM_METADATA_KEY, EndReason, Rejection, RejectReason
from .backend import DraftRequest, GenerationBackend, LocalBackend
from .engine import EngineSettings
from .guardrails import (
    DraftContext,
    GuardrailConfig,
    best_rejected,
    check_draft,
    first_token_ban_sequences,
    word_count,
)
from .loading import load_userlm
from .remote import REMOTE_ARG_FIELDS, RemoteArgs, RemoteBackend
from .template import Conversation, conversation_from_messages, parse_turn, render_prompt

EXTRA_BODY_KEY = "userlm"
"""`GenerateConfig(extra_body={"userlm": {<GuardrailConfig fields>}})` overrides guardrails for one call."""


class UserLMArgs(BaseModel):
    """Model args of `userlm/` (the `-M` options), other than the guardrail and batching fields."""

    model_config = ConfigDict(extra="forbid")

    device: str = "auto"
    """"auto": cuda when available, else cpu."""
    dtype: str = "auto"
    """"auto": bfloat16 on CUDA, float32 on CPU."""
    trust_remote_code: bool = False
    revision: str | None = None
    chat_template: str | None = None
    """A .jinja file (or template text) for checkpoints without a chat template."""
    temperature: float = Field(default=1.0, ge=0)
    """Card/paper value (paper.md §1.4); the checkpoint's generation_config says 0.6 and is ignored."""
    top_p: float = Field(default=0.8, gt=0, le=1)
    """Card/paper value; the checkpoint's generation_config says 0.9 and is ignored."""
    max_new_tokens: int = Field(default=128, ge=1)
    """Default max_tokens per draft (a 25-word turn is ~40 tokens)."""
    seed: int | None = None
    """Default seed when GenerateConfig.seed is unset; None: a fresh random seed per call (recorded)."""


def _valid_args() -> list[str]:
    return sorted(
        {
            *UserLMArgs.model_fields,
            *EngineSettings.model_fields,
            *GuardrailConfig.model_fields,
            *REMOTE_ARG_FIELDS,
        }
    )


def _split_args(
    model_name: str, model_args: dict[str, Any]
) -> tuple[UserLMArgs, EngineSettings, GuardrailConfig]:
    unknown = sorted(set(model_args) - set(_valid_args()))
    if unknown:
        raise ValueError(
            f"userlm/{model_name}: unknown model arg(s) {unknown}. Valid model args: {_valid_args()}"
        )

    def pick(cls: type[BaseModel]) -> BaseModel:
        fields = {k: v for k, v in model_args.items() if k in cls.model_fields}
        try:
            return cls.model_validate(fields)
        except ValidationError as error:
            raise ValueError(f"userlm/{model_name}: invalid model arg(s): {error}") from error

    return pick(UserLMArgs), pick(EngineSettings), pick(GuardrailConfig)  # type: ignore[return-value]


class UserLMAPI(ModelAPI):
    """Inspect provider for a local User LM (UserLM-8b or any HF causal LM with a chat template)."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),  # noqa: B008 - Inspect's ModelAPI signature
        **model_args: Any,
    ) -> None:
        super().__init__(
            model_name=model_name,
            base_url=base_url,
            api_key=api_key,
            api_key_vars=["HF_TOKEN"],
            config=config,
        )
        remote_args = {k: model_args.pop(k) for k in list(model_args) if k in REMOTE_ARG_FIELDS}
        self.args, self.engine_settings, self.guardrails = _split_args(model_name, model_args)
        self.backend: GenerationBackend
        if base_url is not None:  # a vLLM-class server draws the drafts (remote.py); same loop and metadata
            try:
                remote = RemoteArgs.model_validate(remote_args)
            except ValidationError as error:
                raise ValueError(f"userlm/{model_name}: invalid remote model arg(s): {error}") from error
            self.backend = RemoteBackend(
                model_name,
                base_url,
                api_key,
                remote,
                revision=self.args.revision,
                trust_remote_code=self.args.trust_remote_code,
                chat_template=self.args.chat_template,
            )
        else:
            if remote_args:
                raise ValueError(
                    f"userlm/{model_name}: model arg(s) {sorted(remote_args)} need a server: add -M base_url="
                    "http://host:8000/v1 (an OpenAI-compatible /v1/completions endpoint)"
                )
            self.loaded = load_userlm(
                model_name,
                device=self.args.device,
                dtype=self.args.dtype,
                trust_remote_code=self.args.trust_remote_code,
                revision=self.args.revision,
                chat_template=self.args.chat_template,
            )
            self.engine = self.loaded.engine(self.engine_settings)
            self.backend = LocalBackend(self.loaded, self.engine)
        self._first_bans: dict[tuple[str, ...], list[list[int]]] = {}

    def max_tokens(self) -> int | None:
        return self.args.max_new_tokens

    def max_connections(self) -> int:
        # Inspect usually ignores this (notes G1/G2); the engine / remote backend bound concurrency themselves.
        return self.backend.max_connections()

    def should_retry(self, ex: Exception) -> Any:
        # remote: 429/5xx/timeouts retry, a dead server does not (remote.py); local errors never retry
        return self.backend.should_retry(ex)

    def _bans(self, words: tuple[str, ...]) -> list[list[int]]:
        if words not in self._first_bans:
            self._first_bans[words] = first_token_ban_sequences(self.backend.tokenizer, words)
        return self._first_bans[words]

    def _check_context(self, n_prompt: int, max_tokens: int) -> None:
        limit = self.backend.context_limit()
        if limit is not None and n_prompt + max_tokens > limit:
            raise ValueError(
                f"userlm/{self.model_name}: the prompt ({n_prompt} tokens) plus max_tokens ({max_tokens}) exceeds "
                f"the model's context ({limit}); shorten the conversation (fewer turns) or lower max_tokens"
            )

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> tuple[ModelOutput, ModelCall]:
        started = time.perf_counter()
        conversation = conversation_from_messages(input)
        overrides = (config.extra_body or {}).get(EXTRA_BODY_KEY)
        guard = self.guardrails.merged(overrides)
        temperature = config.temperature if config.temperature is not None else self.args.temperature
        top_p = config.top_p if config.top_p is not None else self.args.top_p
        max_tokens = config.max_tokens or self.args.max_new_tokens
        seed_source: Literal["config", "model_arg", "random"]
        if config.seed is not None:
            seed, seed_source = config.seed, "config"
        elif self.args.seed is not None:
            seed, seed_source = self.args.seed, "model_arg"
        else:
            seed, seed_source = random.SystemRandom().randrange(2**31), "random"
        user_turns_in_input = sum(1 for m in input if m.role == "user")
        end_allowed = guard.end_allowed(user_turns_in_input)

        tokenizer = self.backend.tokenizer
        prompt, template_mode = render_prompt(tokenizer, conversation)
        prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
        self._check_context(len(prompt_ids), max_tokens)
        first_bans = self._bans(guard.banned_first_words) if guard.first_token_filter else []
        ctx = DraftContext(conversation.intent, conversation.user_turns, conversation.assistant_turns)

        attempts: list[dict[str, Any]] = []
        rejected: list[Rejection] = []
        drafts: list[tuple[str, EndReason | None, str, str | None]] = []  # per rejected draft
        cut_rows: dict[int, DraftRequest] = {}  # rejected drafts stopped at the length budget, by index
        budget = guard.draft_token_budget(max_tokens)
        usage_in = usage_out = 0
        final: tuple[str, EndReason | None, str, str | None] | None = None
        text_before_end: str | None = None
        for attempt in range(guard.max_retries + 1):
            row = DraftRequest(
                prompt=prompt,
                prompt_ids=prompt_ids,
                temperature=temperature,
                top_p=top_p,
                seed=seed + attempt,
                max_new_tokens=budget,
                ban_end=not end_allowed,
                first_bans=first_bans,
            )
            result = await self.backend.draft(row)
            usage_in += result.prompt_tokens
            usage_out += result.output_tokens
            cut = result.finish == "max_tokens" and budget < max_tokens
            if cut and word_count(parse_turn(result.text).text) <= guard.max_words:
                # the budget may have cut a turn that is still short enough: draft it in full (same seed: the
                # same tokens, continued), so the result is what an uncut draft would have been
                row = dataclasses.replace(row, max_new_tokens=max_tokens)
                result = await self.backend.draft(row)
                usage_in += result.prompt_tokens
                usage_out += result.output_tokens
                cut = False
            text, raw = result.text, result.raw
            first_token = result.first_token
            parsed = parse_turn(text)
            rejection: Rejection | None
            if parsed.end_reason is not None:
                rejection = (
                    None
                    if end_allowed
                    else Rejection(
                        text=parsed.text_before_end or "",
                        reason=RejectReason.EARLY_END,
                        detail=f"{parsed.end_reason.value} with {user_turns_in_input} user turn(s) in the input; "
                        f"min_turns_before_end={guard.min_turns_before_end}",
                    )
                )
            else:
                rejection = check_draft(parsed.text, ctx, guard)
            attempts.append(
                {
                    "attempt": attempt,
                    "seed": row.seed,
                    "raw": raw,
                    "text": parsed.text,
                    "end_reason": parsed.end_reason,
                    "finish": result.finish,
                    "stopped_at_length_budget": cut,
                    "new_tokens": result.new_tokens,
                    "decision": "accepted" if rejection is None else f"rejected: {rejection.reason.value}",
                    "detail": None if rejection is None else rejection.detail,
                    "first_token": first_token,
                    "first_token_bans": result.first_token_bans,
                    "batch_size": result.batch_size,
                    "queued_s": round(result.queued_s, 4),
                    "generate_s": round(result.generate_s, 4),
                    **result.details,
                }
            )
            if rejection is None:
                final = (parsed.text, parsed.end_reason, result.finish, first_token)
                text_before_end = parsed.text_before_end
                break
            if cut:
                rejection.detail = f"{rejection.detail}; drafting stopped at the {budget}-token length budget"
                cut_rows[len(drafts)] = row
            rejected.append(rejection)
            drafts.append((parsed.text, parsed.end_reason, result.finish, first_token))

        exhausted = final is None
        if final is None:  # every draft failed: return the least bad one, flagged
            best = best_rejected(rejected, guard)
            final = drafts[best]
            if best in cut_rows:  # return the whole draft, not the part the length budget let through
                full = await self.backend.draft(
                    dataclasses.replace(cut_rows[best], max_new_tokens=max_tokens)
                )
                usage_in += full.prompt_tokens
                usage_out += full.output_tokens
                whole = parse_turn(full.text)  # an end token past the budget keeps the text before it
                text_whole = whole.text if whole.end_reason is None else (whole.text_before_end or final[0])
                final = (text_whole, None, full.finish, full.first_token)
            attempts[best]["decision"] += " (returned: retries exhausted)"
            del rejected[best]
        text, end_reason, finish, first_token = final
        if end_reason is not None:
            text = ""

        metadata: dict[str, Any] = {
            "end_reason": end_reason,
            "rejected": [r.model_dump(mode="json") for r in rejected],
            "retries": len(attempts) - 1,
            "guardrails_exhausted": exhausted,
            "end_allowed": end_allowed,
            "user_turns_in_input": user_turns_in_input,
            "text_before_end": text_before_end,
            "finish": finish,
            "first_token": first_token,
            "seed": seed,
            "seed_source": seed_source,
            "temperature": temperature,
            "top_p": top_p,
            "max_tokens": max_tokens,
            "template_mode": template_mode,
            "guardrails": guard.model_dump(mode="json"),
        }
        elapsed = time.perf_counter() - started
        output = ModelOutput.from_content(
            model=self.model_name,
            content=text,
            stop_reason="max_tokens" if finish == "max_tokens" else "stop",
        )
        output.usage = ModelUsage(
            input_tokens=usage_in, output_tokens=usage_out, total_tokens=usage_in + usage_out
        )
        output.time = elapsed
        output.metadata = {USERLM_METADATA_KEY: metadata}
        call = ModelCall.create(
            request={
                "model": self.model_name,
                "prompt": prompt,
                "prompt_tokens": len(prompt_ids),
                "template_mode": template_mode,
                "params": {
                    "temperature": temperature,
                    "top_p": top_p,
                    "max_tokens": max_tokens,
                    "seed": seed,
                    "seed_source": seed_source,
                    "end_allowed": end_allowed,
                    "stop_ids": self.backend.stop_ids,
                    "end_token_id": self.backend.end_token_id,
                },
                "backend": self.backend.describe(),
                "guardrails": guard.model_dump(mode="json"),
            },
            response={
                "attempts": attempts,
                "completion": text,
                "end_reason": end_reason,
                "guardrails_exhausted": exhausted,
            },
            time=elapsed,
        )
        return output, call


__all__ = ["EXTRA_BODY_KEY", "UserLMAPI", "UserLMArgs", "Conversation"]
