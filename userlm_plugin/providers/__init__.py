"""Model providers registered with Inspect. Each factory imports its heavy backend only when used (docs/inspect.md
#entry-points-load-on-every-run): `userlm/` pulls in torch + transformers, `litellm/` pulls in litellm (~3 s)."""

from inspect_ai.model import ModelAPI, modelapi


@modelapi(name="userlm")
def userlm() -> type[ModelAPI]:
    """`userlm/<hub id or local folder>`: a User LM (UserLM-8b or any HF causal LM) run locally with the
    paper's guardrails and dynamic batching."""
    from ..runtime.provider import UserLMAPI

    return UserLMAPI


@modelapi(name="litellm")
def litellm() -> type[ModelAPI]:
    """`litellm/<any LiteLLM model string>`: any provider LiteLLM supports, for the assistant under test,
    prompted simulators and judges."""
    from .litellm_api import LiteLLMAPI

    return LiteLLMAPI
