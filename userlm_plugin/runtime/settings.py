"""Every `-M` model arg of `userlm/`, validated before anything loads (torch-free).

    --model-role user=userlm/microsoft/UserLM-8b -M max_batch_size=32 -M max_words=30
    --model-role 'user={model: userlm/microsoft/UserLM-8b, model_args: {base_url: http://gpu:8000/v1}}'

Four groups, one pydantic model each, all `extra="forbid"`: `UserLMArgs` (device, dtype, sampling defaults, ...),
`EngineSettings` (the local engine's batching limits), `guardrails.GuardrailConfig` (the paper's guardrails,
also overridable per call) and `RemoteArgs` (the `/v1/completions` backend, with `-M base_url=`). `split_model_args`
sorts a flat `-M` dict into them; an unknown key is a `ConfigError` that lists every valid one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ConfigError
from ..turns import END_CONVERSATION
from .guardrails import GuardrailConfig


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
    """Card/paper value (docs/userlm.md "Sampling defaults"); the checkpoint's generation_config says 0.6 and is
    ignored."""
    top_p: float = Field(default=0.8, gt=0, le=1)
    """Card/paper value; the checkpoint's generation_config says 0.9 and is ignored."""
    max_new_tokens: int = Field(default=128, ge=1)
    """Default max_tokens per draft (a 25-word turn is ~40 tokens)."""
    seed: int | None = None
    """Default seed when GenerateConfig.seed is unset; None: a fresh random seed per call (recorded)."""


class EngineSettings(BaseModel):
    """Batching limits (model args of the same names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int = Field(default=16, ge=1)
    max_wait_ms: float = Field(default=5.0, ge=0)
    """While the batch is not full, keep collecting until no new request arrived for this long (a burst of
    concurrent samples arrives a few ms apart, each rendering its prompt on the event loop)..."""
    max_hold_ms: float = Field(default=50.0, ge=0)
    """...but never hold a batch longer than this after its first request."""
    max_batch_tokens: int = Field(default=131072, ge=1)
    """Cap on rows x (longest prompt + max new tokens): bounds KV-cache memory (Llama-3-8B: 128 KiB/token bf16)."""
    max_queue: int = Field(default=1024, ge=1)


class RemoteArgs(BaseModel):
    """Model args of the remote backend (besides `base_url` and `api_key`, which Inspect passes itself)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tokenizer: str | None = None
    """The served model's tokenizer: hub id, local folder or `.gguf` file. Default: the model name."""
    server_model: str | None = None
    """The `model` field sent to the server (vLLM's --served-model-name). Default: the model name."""
    timeout: float = Field(default=120.0, gt=0)
    """Seconds for one HTTP call to answer (read timeout); past it the call is retried by Inspect."""
    connect_timeout: float = Field(default=10.0, gt=0)
    connect_retries: int = Field(default=2, ge=0)
    """Quick reconnect tries (0.5 s, 1 s, ...) before a refused connection fails the sample."""
    max_concurrency: int = Field(default=64, ge=1)
    """Drafts in flight to the server at once from this process (Inspect's own limit is adaptive: docs/inspect.md)."""
    prompt_format: Literal["text", "token_ids"] = "text"
    """"text": the rendered prompt (every server accepts it; control-token strings inside message contents are
    broken up by an invisible U+2060 so the server's tokenizer reads them as text). "token_ids": our exact token ids
    (vLLM, SGLang, llama.cpp's own server; not llama-cpp-python): no re-tokenisation, no BOS added by the server,
    message contents tokenized exactly as the local runtime does (docs/serving.md)."""
    send_stop_token_ids: bool = False
    """Also send vLLM's `stop_token_ids` (stop strings are always sent)."""
    first_token_head: int = Field(default=2, ge=1, le=16)
    """Tokens drawn by the head call that carries the first-token ban (UserLM: newline + first word)."""
    server_params: dict[str, Any] = Field(default_factory=dict)
    """Extra fields merged into every request body, e.g. `{top_k: 0, repeat_penalty: 1.0, min_p: 0}` to turn off
    llama.cpp's default samplers, or `{skip_special_tokens: false}` for vLLM."""
    max_context: int | None = Field(default=None, ge=1)
    """The server's context length (prompt + max_tokens are checked against it). Default: the tokenizer's."""
    end_token: str = END_CONVERSATION
    """The token the user model ends a conversation with (banned until allowed)."""
    end_detection: Literal["tokens", "text"] = "tokens"
    """How a draft drawn while ending is allowed is known to end with the end *token* rather than its spelling
    (docs/serving.md "Which end a server drew"). "tokens": those calls ask for `logprobs` (0: the generated tokens'
    strings only) and only the end token ends the draft; a server that returns no token strings falls back to
    "text" for that call, recorded. "text": never ask; the end string in the text ends the draft (for servers that
    reject `logprobs`). While ending is banned neither is needed: any end string is rejected as an end attempt."""
    end_logprobs: int | None = Field(default=None, ge=0, le=20)
    """Top logprobs asked of the server at the first content position, to read log P(`end_token`) there
    (`Draft.end_logprob`). None: 20 when the `end_threshold` rule needs it, else not asked (servers that reject
    `logprobs` keep working). 0: never. k: always, top k (for calibration runs). The value is the server's own
    (vLLM and llama.cpp report the raw distribution, before logit_bias); None when the token is not among the top
    k (its probability is then below the k-th's: docs/serving.md)."""

    @field_validator("server_params", mode="before")
    @classmethod
    def _params_dict(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"server_params must be a mapping of request fields, got {value!r}")
        reserved = {"prompt", "logit_bias", "max_tokens", "stream"} & set(value)
        if reserved:
            raise ConfigError(f"server_params may not set {sorted(reserved)}: the backend sets them per call")
        return value


REMOTE_ARG_FIELDS = frozenset(RemoteArgs.model_fields)


@dataclass(frozen=True)
class ModelArgs:
    """A `userlm/` model's `-M` args, sorted into their groups."""

    args: UserLMArgs
    engine: EngineSettings
    guardrails: GuardrailConfig
    remote: RemoteArgs | None
    """Set when the model has a `base_url` (a server draws the drafts)."""


def valid_model_args() -> list[str]:
    """Every `-M` name `userlm/` accepts (besides Inspect's own `base_url` and `api_key`)."""
    return sorted(
        {
            *UserLMArgs.model_fields,
            *EngineSettings.model_fields,
            *GuardrailConfig.model_fields,
            *REMOTE_ARG_FIELDS,
        }
    )


def split_model_args(model_name: str, model_args: dict[str, Any], *, remote: bool) -> ModelArgs:
    """Validate a flat `-M` dict into its groups; `remote` says whether a `base_url` was given."""
    unknown = sorted(set(model_args) - set(valid_model_args()))
    if unknown:
        raise ConfigError(
            f"userlm/{model_name}: unknown model arg(s) {unknown}. Valid model args: {valid_model_args()}"
        )
    remote_given = sorted(k for k in model_args if k in REMOTE_ARG_FIELDS)
    if remote_given and not remote:
        raise ConfigError(
            f"userlm/{model_name}: model arg(s) {remote_given} need a server: add -M base_url="
            "http://host:8000/v1 (an OpenAI-compatible /v1/completions endpoint)"
        )

    def pick(cls: type[BaseModel], what: str = "") -> Any:
        fields = {k: v for k, v in model_args.items() if k in cls.model_fields}
        try:
            return cls.model_validate(fields)
        except ValidationError as error:
            raise ConfigError(f"userlm/{model_name}: invalid {what}model arg(s): {error}") from error

    return ModelArgs(
        args=pick(UserLMArgs),
        engine=pick(EngineSettings),
        guardrails=pick(GuardrailConfig),
        remote=pick(RemoteArgs, "remote ") if remote else None,
    )


__all__ = [
    "REMOTE_ARG_FIELDS",
    "EngineSettings",
    "ModelArgs",
    "RemoteArgs",
    "UserLMArgs",
    "split_model_args",
    "valid_model_args",
]
