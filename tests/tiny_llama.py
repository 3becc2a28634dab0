"""A tiny random Llama-3-style model with UserLM-8b's template quirks, built offline in ~0.1 s.

What it adds for the runtime tests:

* ``token_bias``: a context-free logit bias per token, baked into the weights (embedding channel 0 is a
  constant 1.0 and ``lm_head[:, 0]`` carries the bias), so a test can make the model *want* a token
  (``<|endconversation|>``, ``I``, ``<|eot_id|>``...).
* ``scripts``: whole sentences the model wants to say. Each token of a sentence gets its own embedding
  channel and ``lm_head`` reads it to push the *next* token of the sentence (a baked-in bigram chain); the
  sentence's first token is pushed by the turn's leading newline with the given start bias, and its last token
  pushes ``<|eot_id|>``. This is how a random 2-layer model "repeats the intent" or "says a short sentence".
* ``newline_first``: the template ends at ``<|end_header_id|>`` (no newline), and, like UserLM, the model
  wants to open its turn with ``\\n`` first: the first-token guardrail must act on the token *after* it.
* ``spelled_end``: the BPE also learns ``<|endconversation|>`` as ordinary text (``<|``, ``endconversation``,
  ``|>``), so a script can make the model *spell* the end string in ordinary tokens, the way UserLM-8b can with
  14 of its own; script sentences are always encoded as text (an added-token string in one stays characters).
* ``flavour="chatml"``: SmolLM2-Instruct's layout instead of Llama-3's (``<|im_start|>``/``<|im_end|>``, its chat
  template with the default system message, eos ``<|im_end|>``, no BOS added): a chat model whose template opens
  an *assistant* turn and has no ``<|eot_id|>``, for the training tests (token_bias works; scripts and
  newline_first are Llama-3-only).

Every token without a script channel gets a constant filler channel instead, so all embeddings have the same
norm and the biases stay calibrated in nats.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import random
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

BOS = "<|begin_of_text|>"
EOT_TEXT = "<|end_of_text|>"
START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
EOT = "<|eot_id|>"
PAD = "<|finetune_right_pad_id|>"
END_CONV = "<|endconversation|>"
SPECIAL_TOKENS = [BOS, EOT_TEXT, START_HEADER, END_HEADER, EOT, PAD, END_CONV]

LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# UserLM-8b's template (docs/userlm.md#the-chat-template-contract): no BOS, one "\n" after each header, and a trailing user header with
# no newline, whatever add_generation_prompt says.
USERLM_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n' + message['content'] + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{{- '<|start_header_id|>user<|end_header_id|>' }}"
)
# Llama-3-Instruct's template: add_generation_prompt opens an *assistant* header (the generic-template trap).
LLAMA3_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
# SmolLM2-135M-Instruct's template (its chat_template.jinja): ChatML, with a default system message.
CHATML_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
FLAVOURS = ("userlm", "llama3", "chatml")

_OPENERS = ["I", "You", "Here", "i", "you", "here", "Hello", "Hi", "Thanks", "So", "Well", "Ok", "Please"]
_SUBJECTS = ["I", "we", "my team", "our app", "the script", "my code", "the test", "you"]
_VERBS = ["need", "want", "tried", "failed", "broke", "returns", "prints", "expects", "write"]
_OBJECTS = [
    "a sorted list",
    "the csv file",
    "an error message",
    "a python function",
    "the json output",
    "a faster loop",
    "a unit test",
    "the docker image",
    "a regex",
    "the database",
    "here",
]
_TAILS = ["can you help?", "why is that?", "what should I change?", "thanks.", "any idea?", "ok", ""]


def synthetic_corpus(n_lines: int = 500, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        words = [
            rng.choice(_OPENERS),
            rng.choice(_SUBJECTS),
            rng.choice(_VERBS),
            rng.choice(_OBJECTS),
            rng.choice(_TAILS),
        ]
        lines.append(" ".join(w for w in words if w))
    return lines


def build_tokenizer(
    flavour: str = "userlm", chat_template: bool = True, end_token: bool = True, spelled_end: bool = False
) -> PreTrainedTokenizerFast:
    """Byte-level BPE in Llama-3's layout (BPE ids first, then the special tokens).

    ``end_token=False`` leaves ``<|endconversation|>`` out: a base model's vocabulary (the training tests add it).
    ``spelled_end=True``: the BPE learns the end string's characters as ordinary tokens (module docstring)."""
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {FLAVOURS}, got {flavour!r}")
    tok = _bpe(spelled_end)
    if flavour == "chatml":
        return _chatml_tokenizer(tok, chat_template, end_token)
    userlm = flavour == "userlm"
    tok.add_special_tokens(
        [
            AddedToken(t, special=True, normalized=False)
            for t in SPECIAL_TOKENS
            if t != END_CONV or (end_token and not userlm)
        ]
    )
    if (
        userlm and end_token
    ):  # UserLM adds it with special=False: it survives skip_special_tokens=True (docs/userlm.md)
        tok.add_tokens([AddedToken(END_CONV, special=False, normalized=False)])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.token_to_id(BOS))]
    )
    template = None
    if chat_template:
        template = USERLM_CHAT_TEMPLATE if userlm else LLAMA3_CHAT_TEMPLATE
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOT,
        pad_token=PAD,
        extra_special_tokens=[START_HEADER, END_HEADER, EOT_TEXT]
        + ([] if userlm or not end_token else [END_CONV]),
        chat_template=template,
        model_max_length=2048,
        clean_up_tokenization_spaces=False,
    )


def _chatml_tokenizer(tok: Tokenizer, chat_template: bool, end_token: bool) -> PreTrainedTokenizerFast:
    """SmolLM2-Instruct's layout: ChatML specials, eos = pad = <|im_end|>, nothing added around an encode."""
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in (ENDOFTEXT, IM_START, IM_END)]
    )
    if end_token:  # a trained folder: non-special, as `train sft` adds it
        tok.add_tokens([AddedToken(END_CONV, special=False, normalized=False)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=IM_START,
        eos_token=IM_END,
        pad_token=IM_END,
        unk_token=ENDOFTEXT,
        chat_template=CHATML_CHAT_TEMPLATE if chat_template else None,
        model_max_length=2048,
        clean_up_tokenization_spaces=False,
    )


def _bpe(spelled_end: bool = False) -> Tokenizer:
    """The byte-level BPE every flavour shares, trained on the synthetic corpus (ids 0..~511)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = synthetic_corpus() + ([END_CONV] * 200 if spelled_end else [])
    tok.train_from_iterator(corpus, trainer=trainer)
    return tok


def _single_id(tokenizer: PreTrainedTokenizerFast, token: str) -> int:
    vocab = tokenizer.get_vocab()
    if token in vocab:
        return vocab[token]
    ids = tokenizer.encode(token, add_special_tokens=False)
    if len(ids) != 1:
        raise KeyError(f"{token!r} is not a single token of the tiny vocabulary (encodes to {ids})")
    return ids[0]


@torch.no_grad()
def build_model(
    tokenizer: PreTrainedTokenizerFast,
    *,
    flavour: str = "userlm",
    token_bias: Mapping[str, float] | None = None,
    scripts: Mapping[str, float] | None = None,
    newline_first: float | None = 8.0,
    chain_strength: float = 14.0,
    seed: int = 0,
) -> LlamaForCausalLM:
    """2-layer, hidden-64 Llama (GQA, llama3 RoPE) with the biases described in the module docstring."""
    hidden = 64
    chatml = flavour == "chatml"
    if chatml and scripts:
        raise ValueError("scripts are Llama-3-only (they chain from <|end_header_id|>)")
    eot_id = tokenizer.convert_tokens_to_ids(IM_END if chatml else EOT)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        bos_token_id=tokenizer.bos_token_id,
        # UserLM's config.json says <|end_of_text|> while its generation_config says <|eot_id|> (docs/userlm.md)
        eos_token_id=tokenizer.convert_tokens_to_ids(EOT_TEXT) if flavour == "userlm" else eot_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 1024,
        },
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    emb, head = model.model.embed_tokens.weight, model.lm_head.weight
    filler = hidden - 1
    emb[:, 0] = 1.0
    emb[:, filler] = 1.0
    head[:, 0] = 0.0
    head[:, 1:filler] = 0.0  # script channels: only the chains below read them
    head[:, filler] = 0.0

    # Calibrate: the post-norm value of a constant-1.0 channel, so that biases are in nats.
    probe = torch.tensor([tokenizer.encode("Hello I need a unit test", add_special_tokens=False)])
    scale = model(probe, output_hidden_states=True).hidden_states[-1][0, :, 0].mean().item()

    channel = iter(range(1, filler))
    channels: dict[int, int] = {}

    def chan(token_id: int) -> int:
        if token_id not in channels:
            channels[token_id] = next(channel)
            emb[token_id, filler] = 0.0
            emb[token_id, channels[token_id]] = 1.0
        return channels[token_id]

    newline_id = _single_id(tokenizer, "\n")
    if newline_first is not None and not chatml:  # ChatML's user header already ends in "\n"
        head[newline_id, chan(tokenizer.convert_tokens_to_ids(END_HEADER))] = newline_first / scale
    used: set[int] = set()
    for sentence, start_bias in (scripts or {}).items():
        ids = plain_ids(tokenizer, sentence)
        if used & set(ids) or len(set(ids)) != len(ids):
            raise ValueError(f"script {sentence!r}: tokens must be distinct within and across scripts")
        used |= set(ids)
        start_from = newline_id if newline_first is not None else tokenizer.convert_tokens_to_ids(END_HEADER)
        head[ids[0], chan(start_from)] = start_bias / scale
        for prev, nxt in zip(ids, ids[1:] + [eot_id], strict=True):
            head[nxt, chan(prev)] = chain_strength / scale
    for token, bias in (token_bias or {}).items():
        head[_single_id(tokenizer, token), 0] = bias / scale

    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eot_id,
        pad_token_id=tokenizer.pad_token_id,
        # UserLM ships temperature 0.6 / top_p 0.9; the card and paper sample at 1.0 / 0.8 (docs/userlm.md)
        **({"do_sample": True, "temperature": 0.6, "top_p": 0.9} if flavour == "userlm" else {}),
    )
    return model.eval()


def plain_ids(tokenizer: PreTrainedTokenizerFast, text: str) -> list[int]:
    """`text` as ordinary tokens: no added token (``<|endconversation|>`` included) is matched."""
    from userlm_plugin.runtime.prompt_encoding import encode_as_text

    return encode_as_text(tokenizer, text)


def build_tiny_userlm(
    out_dir: str | Path,
    *,
    flavour: str = "userlm",
    token_bias: Mapping[str, float] | None = None,
    scripts: Mapping[str, float] | None = None,
    newline_first: float | None = 8.0,
    chat_template: bool = True,
    end_token: bool = True,
    spelled_end: bool = False,
    seed: int = 0,
) -> Path:
    """Build tokenizer + model and save both to `out_dir`, ready for `from_pretrained(local_files_only=True)`."""
    out_dir = Path(out_dir)
    tokenizer = build_tokenizer(
        flavour=flavour, chat_template=chat_template, end_token=end_token, spelled_end=spelled_end
    )
    model = build_model(
        tokenizer,
        flavour=flavour,
        token_bias=token_bias,
        scripts=scripts,
        newline_first=newline_first,
        seed=seed,
    )
    tokenizer.save_pretrained(out_dir)
    model.save_pretrained(out_dir)
    return out_dir


def spec_key(**spec: object) -> str:
    """A stable, filename-safe key for a build spec (for per-session caching)."""
    import hashlib
    import json

    return hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:12]


def words(texts: Iterable[str]) -> list[int]:
    return [len(t.split()) for t in texts]
