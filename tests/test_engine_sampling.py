"""The engine's device sampler (runtime/local/sampling.py): counter-based randomness, rows independent of their
batch-mates, the first-token filter against `guardrails.banned_next`, the end ban, nucleus sampling, and the
end-token logprob at the first content position (checked against a teacher-forced forward of the real model)."""

from __future__ import annotations

import math

import pytest
import torch
from inspect_ai.model import ChatMessageSystem, ChatMessageUser, GenerateConfig

from userlm_plugin.runtime.guardrails import banned_next
from userlm_plugin.runtime.local.sampling import (
    TOP_K,
    RowTensors,
    SamplerConstants,
    counter_uniform,
    sample_step,
    splitmix64_reference,
)
from userlm_plugin.runtime.types import RowSpec
from userlm_plugin.turns import USERLM_METADATA_KEY

CPU = torch.device("cpu")


def rows_for(specs: list[RowSpec]) -> RowTensors:
    n_seqs = max((len(s.first_bans) for s in specs), default=0)
    seq_len = max((len(b) for s in specs for b in s.first_bans), default=1)
    rows = RowTensors.empty(len(specs), CPU, n_seqs, seq_len)
    rows.write(0, specs)
    return rows


def spec(seed: int = 0, temperature: float = 1.0, top_p: float = 1.0, **kw) -> RowSpec:
    return RowSpec(
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        max_new_tokens=100,
        ban_end=kw.get("ban_end", False),
        first_bans=kw.get("first_bans", ()),
    )


def consts(
    vocab: int, whitespace=frozenset(), end: int | None = None, full_sort: bool = False
) -> SamplerConstants:
    built = SamplerConstants.build(vocab, whitespace, end, CPU)
    return SamplerConstants(built.whitespace, built.end_token_id, full_sort)


def test_counter_uniform_is_splitmix64() -> None:
    seeds = [0, 1, 42, 2**31 - 1, 2**62 + 5, 2**63 - 1, 2**64 - 1]
    steps = [0, 1, 2, 1000, 2**40]
    pairs = [(s, k) for s in seeds for k in steps]
    signed = [s - 2**64 if s >= 2**63 else s for s, _ in pairs]
    got = counter_uniform(torch.tensor(signed), torch.tensor([k for _, k in pairs])).tolist()
    assert got == [splitmix64_reference(s, k) for s, k in pairs]
    draws = counter_uniform(torch.arange(20000), torch.zeros(20000, dtype=torch.long))
    assert 0 <= draws.min() and draws.max() < 1 and abs(draws.mean().item() - 0.5) < 0.01


def test_rows_draw_the_same_alone_or_batched() -> None:
    torch.manual_seed(0)
    logits = torch.randn(6, 40) * 3
    specs = [spec(seed=i, temperature=[1.0, 0.7, 1.5][i % 3], top_p=[1.0, 0.8][i % 2]) for i in range(6)]
    k = consts(40)
    together_rows = rows_for(specs)
    together = [sample_step(logits.clone(), together_rows, 0, 6, k)[:, 0].tolist() for _ in range(12)]
    for i, s in enumerate(specs):
        alone_rows = rows_for([s])
        alone = [sample_step(logits[i : i + 1].clone(), alone_rows, 0, 1, k)[0, 0].item() for _ in range(12)]
        assert alone == [step[i] for step in together]


def test_nucleus_and_temperature() -> None:
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    n = 4000
    rows = rows_for([spec(seed=i, top_p=0.8) for i in range(n)])
    drawn = sample_step(p.log().expand(n, 4).clone(), rows, 0, n, consts(4))[:, 0]
    counts = torch.bincount(drawn.long(), minlength=4) / n
    assert counts[2] == 0 and counts[3] == 0  # outside the 0.8 nucleus
    assert counts[0].item() == pytest.approx(0.5 / 0.8, abs=0.03)
    # temperature 0.5 squares the odds: 0.25 : 0.09 : ...
    rows = rows_for([spec(seed=i, temperature=0.5) for i in range(n)])
    drawn = sample_step(p.log().expand(n, 4).clone(), rows, 0, n, consts(4))[:, 0]
    expected = (p**2 / (p**2).sum())[0].item()
    assert (drawn == 0).float().mean().item() == pytest.approx(expected, abs=0.03)
    # temperature 0: greedy whatever the seed
    rows = rows_for([spec(seed=i, temperature=0.0) for i in range(50)])
    assert set(sample_step(p.log().expand(50, 4).clone(), rows, 0, 50, consts(4))[:, 0].tolist()) == {0.0}


@pytest.mark.parametrize("peaked", [True, False])
def test_top_k_shortcut_is_exact(peaked: bool) -> None:
    """Above TOP_K tokens the CPU path sorts only the top TOP_K when they hold every row's nucleus (else all):
    the draws equal a full sort's either way."""
    torch.manual_seed(1)
    vocab = TOP_K * 3
    logits = torch.randn(32, vocab) * (8 if peaked else 0.1)
    specs = [spec(seed=i, top_p=0.9) for i in range(32)]
    a = sample_step(logits.clone(), rows_for(specs), 0, 32, consts(vocab, full_sort=False))
    b = sample_step(logits.clone(), rows_for(specs), 0, 32, consts(vocab, full_sort=True))
    assert torch.equal(a[:, 0], b[:, 0])


WS, FALLBACK = 1, 3
BANS = [[5], [7, 8], [7, 9, 10]]


@pytest.mark.parametrize(
    "script",
    [[WS, 5, 2], [WS, 7, 8, 2], [WS, 7, 9, 10, 2], [7, 2, 8], [WS, WS, 5, 7], [2, 5, 7, 8], [WS, 7, 9, 11]],
)
def test_first_token_filter_matches_banned_next(script: list[int]) -> None:
    """At each step the model wants `script[t]` (else FALLBACK); the filter must ban exactly what
    `guardrails.banned_next` bans given the content drawn so far (whitespace before content is not content)."""
    rows = rows_for([spec(temperature=0.0, first_bans=BANS)])
    k = consts(20, whitespace=frozenset({WS}))
    window = max(len(b) for b in BANS)
    content: list[int] = []
    expected_bans = 0
    for want in script:
        logits = torch.zeros(1, 20)
        logits[0, want], logits[0, FALLBACK] = 50.0, 25.0
        banned = banned_next(BANS, content) if len(content) < window else []
        expected_bans += bool(banned)
        token, bans_applied, _ = sample_step(logits, rows, 0, 1, k)[0].tolist()
        assert int(token) == (FALLBACK if want in banned else want), (script, content)
        assert bans_applied == expected_bans
        if content or int(token) != WS:
            content.append(int(token))


def test_end_ban_and_end_logprob_at_the_first_content_position() -> None:
    end = 4
    rows = rows_for([spec(seed=3, ban_end=True), spec(seed=3, ban_end=False)])
    k = consts(8, whitespace=frozenset({WS}), end=end)
    steps = [torch.randn(2, 8) for _ in range(3)]
    for s in steps:
        s[:, end] = 6.0  # the end token is the favourite...
    steps[0][:, WS] = steps[1][:, WS] = 30.0  # ...after two whitespace tokens
    first, second, third = (sample_step(s.clone(), rows, 0, 2, k) for s in steps)
    assert math.isnan(first[0, 2]) and math.isnan(second[0, 2])  # no content position yet
    assert int(third[0, 0]) != end and int(third[1, 0]) == end  # banned in row 0 only
    raw = torch.log_softmax(steps[2], dim=-1)[:, end]
    assert third[:, 2].tolist() == pytest.approx(raw.tolist(), abs=1e-6)  # before the ban, at temperature 1


# ----- with the tiny model -----


def teacher_forced_end_logprob(loaded, prompt_ids: list[int], tokens: list[int]) -> float:
    """log P(end) after prompt + the whitespace tokens before the first content token, from a plain forward."""
    content_at = next(i for i, t in enumerate(tokens) if t not in loaded.whitespace_ids)
    ids = torch.tensor([prompt_ids + tokens[:content_at]])
    with torch.inference_mode():
        logits = loaded.model(input_ids=ids).logits[0, -1].float()
    return torch.log_softmax(logits, dim=-1)[loaded.end_token_id].item()


def engine_draft(path, seed: int):
    from userlm_plugin.runtime.local.engine import GenRequest
    from userlm_plugin.runtime.local.loading import load_userlm
    from userlm_plugin.runtime.settings import EngineSettings

    loaded = load_userlm(str(path), device="cpu")
    text = "<|start_header_id|>system<|end_header_id|>\nYou want help with a unit test<|eot_id|>"
    prompt_ids = loaded.tokenizer.encode(
        text + "<|start_header_id|>user<|end_header_id|>", add_special_tokens=False
    )
    engine = loaded.engine(EngineSettings(max_batch_size=4))
    row = RowSpec(temperature=1.0, top_p=0.8, seed=seed, max_new_tokens=8, ban_end=True)
    return loaded, prompt_ids, engine.submit(GenRequest(prompt_ids, row)).result(timeout=120)


@pytest.mark.parametrize("bias", [None, 5.0])
def test_end_logprob_equals_a_teacher_forced_forward(tiny_userlm_factory, bias) -> None:
    path = tiny_userlm_factory(token_bias={"<|endconversation|>": bias}) if bias else tiny_userlm_factory()
    for seed in (1, 2):
        loaded, prompt_ids, result = engine_draft(path, seed)
        assert result.token_ids[0] in loaded.whitespace_ids  # UserLM opens its turn with "\n"
        assert result.end_logprob == pytest.approx(
            teacher_forced_end_logprob(loaded, prompt_ids, result.token_ids), abs=1e-4
        )
        if bias:
            assert result.end_logprob > math.log(0.1)
        else:
            assert result.end_logprob < math.log(0.01)
        assert loaded.end_token_id not in result.token_ids  # banned, whatever its probability


def test_end_logprob_is_none_without_an_end_token(tiny_userlm_factory) -> None:
    _, _, result = engine_draft(tiny_userlm_factory(end_token=False), 1)
    assert result.end_logprob is None and result.token_ids


async def test_end_logprob_reaches_the_output_metadata(tiny_userlm_factory, tiny_userlm_model) -> None:
    biased = tiny_userlm_model(tiny_userlm_factory(token_bias={"<|endconversation|>": 5.0}))
    plain = tiny_userlm_model(tiny_userlm_factory())
    messages = [ChatMessageSystem(content="You want help with a unit test"), ChatMessageUser(content="hi")]
    config = GenerateConfig(seed=3, max_tokens=8, extra_body={"userlm": {"max_retries": 0}})
    high = (await biased.generate(messages, config=config)).metadata[USERLM_METADATA_KEY]["end_logprob"]
    low = (await plain.generate(messages, config=config)).metadata[USERLM_METADATA_KEY]["end_logprob"]
    assert high > math.log(0.1) > math.log(0.01) > low
