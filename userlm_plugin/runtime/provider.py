"""`userlm/<hub id or folder>`: a User LM served to Inspect, with the paper's guardrails.

    inspect eval ... --model-role user=userlm/microsoft/UserLM-8b -M max_batch_size=32
    inspect eval ... --model-role user=userlm/microsoft/UserLM-8b -M base_url=http://gpu-host:8000/v1

Each `generate` call: validate the input (intent = system message, real roles), render the model's own template
(ending by opening a user turn; every message's content encoded as text, so control-token strings written in a
message never become control tokens: prompt_encoding.py), then `drafting.draft_turn` runs the
guardrail loop on the backend. The result is a `ModelOutput` whose completion is the next user turn ("" when the
user ended the conversation), with `usage` summed over every draft, and `metadata["userlm"]` carrying the
`UserTurn` fields (end_reason, rejected, retries, guardrails_exhausted) plus the settings used. The `ModelCall`
holds the rendered prompt, the parameters and every draft with its decision.

The `-M` args, a local folder (exists, has a chat template) and, offline, a hub id (downloaded?) are checked when
the model is created; the weights (or, for a server, its tokenizer) load on the first `generate`, so
`inspect score`, `inspect view` and a task that never calls the user model never load them.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import OrderedDict
from pathlib import Path
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

from .._inspect_compat import model_args_being_created
from ..errors import (
    BackendUnavailableError,
    ConfigError,
    ModelLoadError,
    RedactedError,
    RetryableBackendError,
    retries_requested,
)
from ..providers.credentials import (
    clean_in_place,
    redact_url,
    refuse_logged_base_url,
    refuse_redacted_url,
)
from ..providers.scrub import Secrets, environment_secrets, register_secrets, scrubbed_error
from ..turns import END_CONVERSATION, USERLM_METADATA_KEY
from .drafting import TurnPlan, TurnResult, draft_turn
from .guardrails import DraftContext, first_token_ban_sequences
from .hub import check_offline_hub_id
from .prompt_encoding import EncodedPrompt, encode_as_text, encode_rendered
from .settings import split_model_args, valid_model_args
from .template import (
    RenderedPrompt,
    UserLMInput,
    conversation_from_messages,
    folder_has_chat_template,
    looks_local,
    render_pieces,
)
from .types import GenerationBackend

EXTRA_BODY_KEY = "userlm"
"""`GenerateConfig(extra_body={"userlm": {<GuardrailConfig fields>}})` overrides guardrails for one call."""
OFFLOAD_CHARS = 32_000
"""Inputs longer than this are rendered and tokenized in a worker thread, so one huge message (a pasted file, an
abusive `serve` client) does not stall the event loop and every other sample; shorter ones take well under a
millisecond and stay on the loop."""
OFFLOAD_MESSAGES = 64
"""Inputs with more messages than this are rendered in a worker thread too (rendering is linear in the message
count, but a template's per-message work adds up: docs/serving.md "serve under abuse")."""
BAN_CACHE_SIZE = 64
"""Distinct `banned_first_words` lists whose token sequences are kept (least recently used dropped): a stream of
per-call overrides (`serve` clients) cannot grow memory without bound."""


class UserLMAPI(ModelAPI):
    """Inspect provider for a User LM (UserLM-8b or any HF causal LM with a chat template), local or on a server."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),  # noqa: B008 - Inspect's ModelAPI signature
        **model_args: Any,
    ) -> None:
        refuse_redacted_url(f"userlm/{model_name}", "base_url", base_url, "USERLM_API_KEY")
        refuse_logged_base_url(
            f"userlm/{model_name}",
            base_url,
            "Keep credentials out of the URL (-M api_key=... or USERLM_API_KEY), or use the model as a role, whose "
            f"base URL is logged without them: --model-role 'user={{model: userlm/{model_name}, model_args: "
            "{base_url: ...}}'.",
        )
        found: set[str] = set()
        super().__init__(
            model_name=model_name,
            # what Inspect logs as a role's base URL: without its credentials; the backend uses `server_url`
            base_url=redact_url(base_url, found) if isinstance(base_url, str) else base_url,
            api_key=api_key,
            api_key_vars=["HF_TOKEN"],
            config=config,
        )
        self.server_url = base_url
        """The server's URL as given, credentials included (`base_url` is its logged copy)."""
        logged = model_args_being_created()  # what Inspect will log as this model's args (server_params, ...)
        if logged is not None:  # our settings are not secrets (`end_token`); `server_params` may hold some
            clean_in_place(logged, found, settings=frozenset(valid_model_args()) - {"server_params"})
        self.secrets = Secrets([*found, api_key, *environment_secrets()])
        """Every configured secret value, scrubbed from the errors this provider hands to Inspect's log."""
        register_secrets(self.secrets)  # and from the libraries' log records
        settings = split_model_args(model_name, model_args, remote=base_url is not None)
        self.args, self.engine_settings, self.guardrails = settings.args, settings.engine, settings.guardrails
        self.remote_args = settings.remote
        if base_url is None and looks_local(model_name):
            _check_model_folder(model_name, self.args.chat_template)
        if base_url is not None and not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"userlm/{model_name}: base_url must be an http(s) URL of an OpenAI-compatible server, e.g. "
                f"-M base_url=http://127.0.0.1:8000/v1; got {base_url!r}"
            )
        if self.remote_args is None:
            if not looks_local(model_name):
                check_offline_hub_id(model_name, model_name, ("config.json",), self.args.revision)
        elif not looks_local(source := self.remote_args.tokenizer or model_name):
            check_offline_hub_id(
                model_name, source, ("tokenizer_config.json", "tokenizer.json"), self.args.revision
            )
        self._backend: GenerationBackend | None = None
        self._backend_lock = threading.Lock()
        self._first_bans: OrderedDict[tuple[str, ...], list[list[int]]] = OrderedDict()
        self._no_end_bans: list[list[int]] | None = None

    # ----- the backend, built on first use -----

    @property
    def backend(self) -> GenerationBackend:
        """The backend (built, and the weights or tokenizer loaded, on first access; blocking)."""
        with self._backend_lock:
            if self._backend is None:
                self._backend = self._build_backend()
            return self._backend

    def _build_backend(self) -> GenerationBackend:
        if self.remote_args is not None:
            from .remote import RemoteBackend

            return RemoteBackend(
                self.model_name,
                self.server_url or "",
                self.api_key,
                self.remote_args,
                secrets=self.secrets,
                revision=self.args.revision,
                trust_remote_code=self.args.trust_remote_code,
                chat_template=self.args.chat_template,
            )
        try:
            from .local.backend import LocalBackend
            from .local.loading import load_userlm
        except ImportError as error:  # torch / transformers missing: the runtime extra is not installed
            from ..errors import missing_dependency

            raise missing_dependency(
                error.name or "torch", "runtime", f"userlm/{self.model_name} (the local User LM runtime)"
            ) from error
        loaded = load_userlm(
            self.model_name,
            device=self.args.device,
            dtype=self.args.dtype,
            trust_remote_code=self.args.trust_remote_code,
            revision=self.args.revision,
            chat_template=self.args.chat_template,
        )
        return LocalBackend(loaded, loaded.engine(self.engine_settings))

    async def _ready_backend(self) -> GenerationBackend:
        if self._backend is not None:
            return self._backend
        # loading takes seconds to minutes: off the event loop, so other samples and the display keep running
        return await asyncio.to_thread(lambda: self.backend)

    @property
    def backend_if_loaded(self) -> GenerationBackend | None:
        """The backend if it was built already (never builds it: `serve`'s /health must not load the weights)."""
        return self._backend

    @property
    def loaded(self) -> Any:
        """The loaded local model (`local.loading.LoadedUserLM`); loads it on first access."""
        return getattr(self.backend, "loaded", None)

    @property
    def engine(self) -> Any:
        """The local batching engine (None for a remote backend); loads the model on first access."""
        return getattr(self.backend, "engine", None)

    # ----- ModelAPI -----

    def max_tokens(self) -> int | None:
        return self.args.max_new_tokens

    def max_connections(self) -> int:
        # Inspect usually ignores this (docs/inspect.md); the engine / remote backend bound concurrency themselves.
        if self.remote_args is not None:
            return self.remote_args.max_concurrency
        return max(self.engine_settings.max_batch_size * 4, 16)

    def should_retry(self, ex: Exception) -> Any:
        # remote: 429/5xx/timeouts retry, a dead server does not (remote.py); local errors never retry
        if isinstance(ex, RedactedError):
            return ex.retry or False  # decided on the original, before its secrets were scrubbed
        return self._backend.should_retry(ex) if self._backend is not None else False

    def _bans(self, backend: GenerationBackend, words: tuple[str, ...]) -> list[list[int]]:
        if words in self._first_bans:
            self._first_bans.move_to_end(words)
        else:
            self._first_bans[words] = first_token_ban_sequences(backend.tokenizer, words)
            while len(self._first_bans) > BAN_CACHE_SIZE:
                self._first_bans.popitem(last=False)
        return self._first_bans[words]

    def _end_bans(self, backend: GenerationBackend) -> list[list[int]]:
        """First-content bans of the last-resort draft (`TurnPlan.no_end_bans`): every stop token, the end token and
        the first ordinary token of the spelled end string."""
        if self._no_end_bans is None:
            spelled = encode_as_text(backend.tokenizer, END_CONVERSATION)
            ids = [*backend.stop_ids, *([] if backend.end_token_id is None else [backend.end_token_id])]
            self._no_end_bans = [[int(i)] for i in dict.fromkeys([*ids, *spelled[:1]])]
        return self._no_end_bans

    def _check_context(self, backend: GenerationBackend, n_prompt: int, max_tokens: int) -> None:
        limit = backend.context_limit()
        if limit is not None and n_prompt + max_tokens > limit:
            raise ConfigError(
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
        try:
            return await self._generate(input, config)
        except Exception as ex:
            error = scrubbed_error(ex, self.secrets, retry=self.should_retry(ex))
            if error is ex:
                raise
            traceback = ex.__traceback__
        # outside the except block, so Python attaches no context: the original's text never reaches the log
        # (a key the server echoed in its error; docs/grading.md#secrets-in-logs)
        raise error.with_traceback(traceback) from None

    async def _generate(
        self, input: list[ChatMessage], config: GenerateConfig
    ) -> tuple[ModelOutput, ModelCall]:
        started = time.perf_counter()
        offload = _is_big(input)
        if offload:  # validating 20,000 messages is linear but not free: off the event loop too
            conversation = await asyncio.to_thread(conversation_from_messages, input)
        else:
            conversation = conversation_from_messages(input)
        guard = self.guardrails.merged((config.extra_body or {}).get(EXTRA_BODY_KEY))
        backend = await self._ready_backend()
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

        rendered, encoded = await _render(backend.tokenizer, conversation, offload)
        prompt, prompt_ids, template_mode = rendered.text, encoded.ids, rendered.mode
        self._check_context(backend, len(prompt_ids), max_tokens)
        plan = TurnPlan(
            prompt=prompt,
            prompt_ids=prompt_ids,
            server_prompt=encoded.server_text if encoded.server_text != prompt else None,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            seed=seed,
            guard=guard,
            end_allowed=guard.end_allowed(user_turns_in_input),
            context=DraftContext(conversation.intent, conversation.user_turns, conversation.assistant_turns),
            first_bans=self._bans(backend, guard.banned_first_words) if guard.first_token_filter else (),
            user_turns_in_input=user_turns_in_input,
            no_end_bans=self._end_bans(backend),
        )
        try:
            result = await draft_turn(backend, plan)
        except BackendUnavailableError as error:
            if not retries_requested(config):
                raise  # nothing answers: a bounded number of quick tries, then the sample fails (not retried)
            raise RetryableBackendError(
                f"{error} Retried within your --max-retries/--timeout.", "transient"
            ) from error
        elapsed = time.perf_counter() - started
        params = {
            "temperature": temperature,
            "top_p": top_p,
            "max_tokens": max_tokens,
            "seed": seed,
            "seed_source": seed_source,
        }
        output = ModelOutput.from_content(
            model=self.model_name,
            content=result.text,
            stop_reason="max_tokens" if result.finish == "max_tokens" else "stop",
        )
        output.usage = ModelUsage(
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            total_tokens=result.input_tokens + result.output_tokens,
        )
        output.time = elapsed
        output.metadata = {
            USERLM_METADATA_KEY: _output_metadata(result, plan, params, template_mode),
        }
        # the returned turn's own tokens (usage above is every draft's: what the turn cost); `serve` reports both
        output.metadata[USERLM_METADATA_KEY]["turn_usage"] = {
            "prompt_tokens": len(prompt_ids),
            "completion_tokens": result.turn_output_tokens,
            "drafts": len(result.attempts),
        }
        call = ModelCall.create(
            request={
                "model": self.model_name,
                "prompt": prompt,
                "prompt_tokens": len(prompt_ids),
                "template_mode": template_mode,
                "content_control_strings": encoded.escaped,
                "params": {
                    **params,
                    "end_allowed": plan.end_allowed,
                    "stop_ids": backend.stop_ids,
                    "end_token_id": backend.end_token_id,
                },
                "backend": backend.describe(),
                "guardrails": guard.model_dump(mode="json"),
            },
            response={
                "attempts": [a.as_log() for a in result.attempts],
                "completion": result.text,
                "end_reason": result.end_reason,
                "guardrails_exhausted": result.exhausted,
            },
            time=elapsed,
        )
        return output, call


def _is_big(messages: list[ChatMessage]) -> bool:
    """Whether an input is rendered off the event loop (`OFFLOAD_MESSAGES`, `OFFLOAD_CHARS`)."""
    return len(messages) > OFFLOAD_MESSAGES or sum(len(m.text) for m in messages) > OFFLOAD_CHARS


async def _render(
    tokenizer: Any, conversation: UserLMInput, offload: bool
) -> tuple[RenderedPrompt, EncodedPrompt]:
    """Render and encode the prompt; in a worker thread when the input is big (`_is_big`)."""

    def render() -> tuple[RenderedPrompt, EncodedPrompt]:
        rendered = render_pieces(tokenizer, conversation)
        return rendered, encode_rendered(tokenizer, rendered)

    if offload:
        return await asyncio.to_thread(render)
    return render()


def _check_model_folder(model_name: str, chat_template: str | None) -> None:
    """The cheap checks of a local model folder, before anything loads: it exists, and it has a chat template
    (the User LM prompt cannot be rendered without one) unless `-M chat_template=` supplies it."""
    folder = Path(model_name).expanduser()
    if not folder.is_dir():
        raise ModelLoadError(
            f"userlm/{model_name}: no such model folder ({folder.resolve()}). Pass an existing local folder with "
            "config.json, tokenizer files and weights, or a hub id like microsoft/UserLM-8b."
        )
    if chat_template is None and not folder_has_chat_template(folder):
        raise ModelLoadError(
            f"userlm/{model_name}: the tokenizer has no chat template, so the intent/turn prompt cannot be "
            "rendered. Add chat_template.jinja (UserLM-8b ships one) to the folder, or pass "
            "-M chat_template=<file.jinja>."
        )


def _output_metadata(
    result: TurnResult, plan: TurnPlan, params: dict[str, Any], template_mode: str
) -> dict[str, Any]:
    """`output.metadata["userlm"]`: the `UserTurn` contract fields plus the settings of this call."""
    metadata: dict[str, Any] = {
        "end_reason": result.end_reason,
        "rejected": [r.model_dump(mode="json") for r in result.rejected],
        "retries": len(result.attempts) - 1,
        "guardrails_exhausted": result.exhausted,
        "end_allowed": plan.end_allowed,
        "user_turns_in_input": plan.user_turns_in_input,
        "text_before_end": result.text_before_end,
        "finish": result.finish,
        "first_token": result.first_token,
        **params,
        "template_mode": template_mode,
        "guardrails": plan.guard.model_dump(mode="json"),
    }
    if result.end_logprob is not None or plan.guard.end_threshold is not None:
        # with the threshold rule on, None is recorded too: the backend could not say (no logprobs)
        metadata["end_logprob"] = result.end_logprob
    return metadata


__all__ = ["EXTRA_BODY_KEY", "UserLMAPI"]
