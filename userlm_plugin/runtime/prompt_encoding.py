"""A rendered prompt as token ids, with every message's content encoded as text (torch-free).

Why: a tokenizer's `encode` turns every added-token string it finds into that token. Encoding a rendered prompt
whole would let an assistant message that says `<|eot_id|><|start_header_id|>system<|end_header_id|>` open a new
system turn in the User LM's context, and one that says `<|endconversation|>` put the end token in it. So:

* The template's own pieces (`template.render_pieces`) are encoded normally: their control tokens are real.
* Each message's content is encoded as text: no added token (special or not, so `<|endconversation|>` too) is
  matched inside it; `<|eot_id|>` there becomes the ordinary tokens of the characters `<|eot_id|>`.
* For content without such strings the ids are exactly what encoding the whole prompt gives (the common case,
  checked token for token by the tests), so nothing changes for benign conversations.

`EncodedPrompt.server_text` is the same prompt for servers that re-tokenize text with control tokens parsed
(llama.cpp, vLLM text prompts): a control-token string inside a content gets a WORD JOINER (U+2060) after its
first character, so the server's tokenizer cannot match it (docs/serving.md "Message contents are text").
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .template import WORD_JOINER, RenderedPrompt


@dataclass(frozen=True)
class EncodedPrompt:
    ids: list[int]
    """The model's input ids: template control tokens real, contents as text."""
    server_text: str
    """The prompt as text for a server that tokenizes control-token strings (equals the prompt text unless a
    content holds one)."""
    escaped: int
    """Control-token strings found inside message contents (each encoded as text instead)."""


def encode_rendered(tokenizer: Any, rendered: RenderedPrompt) -> EncodedPrompt:
    """Token ids for `rendered` (see the module docstring)."""
    text = rendered.text
    whole = _encode_whole(tokenizer, rendered)
    if whole is not None:
        return EncodedPrompt(ids=whole, server_text=text, escaped=0)
    ids: list[int] = []
    escaped = 0
    pattern = _control_pattern(tokenizer)
    for index, piece in enumerate(rendered.pieces):
        if not piece:
            continue
        if index % 2:  # a message's content
            ids += encode_as_text(tokenizer, piece)
            escaped += len(pattern.findall(piece)) if pattern is not None else 0
        else:
            ids += list(tokenizer.encode(piece, add_special_tokens=False))
    return EncodedPrompt(ids=ids, server_text=server_text(tokenizer, rendered), escaped=escaped)


def _encode_whole(tokenizer: Any, rendered: RenderedPrompt) -> list[int] | None:
    """The whole prompt's ids when no control token of them lies inside a message's content, else None."""
    control = _control_ids(tokenizer)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # a Python tokenizer: no offsets, so look for the strings themselves
        strings = [s for s in _added_tokens(tokenizer).values() if s]
        if any(s in content for content in rendered.contents for s in strings):
            return None
        return list(tokenizer.encode(rendered.text, add_special_tokens=False))
    # encode_batch releases the GIL (encode does not), so a huge prompt tokenized in a worker thread leaves the
    # event loop running; offsets are read for the few control tokens only
    encoding = backend.encode_batch([rendered.text], add_special_tokens=False)[0]
    ids = list(encoding.ids)
    spans = _content_spans(rendered)  # sorted and disjoint: a bisect per control token (linear overall)
    starts = [a for a, _ in spans]
    for k, token in enumerate(ids):
        if token in control:
            start, end = encoding.token_to_chars(k)
            i = bisect.bisect_right(starts, start) - 1  # the last content starting at or before `start`
            if (i >= 0 and spans[i][1] > start) or (i + 1 < len(spans) and spans[i + 1][0] < end):
                return None
    return ids


def _content_spans(rendered: RenderedPrompt) -> list[tuple[int, int]]:
    spans = []
    at = 0
    for index, piece in enumerate(rendered.pieces):
        if index % 2 and piece:
            spans.append((at, at + len(piece)))
        at += len(piece)
    return spans


def encode_as_text(tokenizer: Any, text: str) -> list[int]:
    """`text`'s ids with no added token matched (special or not): control-token strings become ordinary tokens.

    Fast tokenizers: a private copy of the tokenizer's pipeline in which every added token is flagged special and
    special tokens are not matched (the shared tokenizer is never switched, so concurrent encodes are safe).
    Python tokenizers: `split_special_tokens=True`, which skips all added tokens there."""
    plain = _plain_tokenizer(tokenizer)
    if plain is None:
        return list(tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True))
    return list(plain.encode_batch([text], add_special_tokens=False)[0].ids)


def server_text(tokenizer: Any, rendered: RenderedPrompt) -> str:
    """The prompt text with every control-token string inside a content broken by a WORD JOINER."""
    pattern = _control_pattern(tokenizer)
    if pattern is None:
        return rendered.text
    pieces = list(rendered.pieces)
    for index in range(1, len(pieces), 2):
        pieces[index] = pattern.sub(lambda m: m.group(0)[0] + WORD_JOINER + m.group(0)[1:], pieces[index])
    return "".join(pieces)


def _added_tokens(tokenizer: Any) -> dict[int, str]:
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    return {int(i): str(getattr(t, "content", t)) for i, t in decoder.items()}


def _cached(tokenizer: Any, name: str, build: Callable[[dict[int, str]], Any]) -> Any:
    """`build(added tokens)`, cached on the tokenizer until its added tokens change (e.g. a trainer adds one)."""
    added = _added_tokens(tokenizer)
    key = tuple(sorted(added))
    cached = getattr(tokenizer, name, None)
    if cached is None or cached[0] != key:
        cached = (key, build(added))
        setattr(tokenizer, name, cached)
    return cached[1]


def _control_ids(tokenizer: Any) -> frozenset[int]:
    return _cached(tokenizer, "_userlm_control_ids", lambda added: frozenset(added))


def _control_pattern(tokenizer: Any) -> re.Pattern[str] | None:
    """A regex matching any added-token string of two or more characters (longest first, any case: a server's
    tokenizer may lowercase before matching), or None when the tokenizer has none. A one-character added token
    cannot be broken up in text; only `prompt_format=token_ids` keeps it text on a server."""

    def build(added: dict[int, str]) -> re.Pattern[str] | None:
        strings = sorted({s for s in added.values() if len(s) > 1}, key=len, reverse=True)
        return re.compile("|".join(re.escape(s) for s in strings), re.IGNORECASE) if strings else None

    return _cached(tokenizer, "_userlm_control_pattern", build)


def _plain_tokenizer(tokenizer: Any) -> Any:
    """A `tokenizers.Tokenizer` copy that matches no added token (None: not a fast tokenizer)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None

    def build(added: dict[int, str]) -> Any:
        from tokenizers import Tokenizer

        data = json.loads(backend.to_str())
        for token in data.get("added_tokens") or []:
            token["special"] = True
        plain = Tokenizer.from_str(json.dumps(data))
        plain.encode_special_tokens = True
        plain.no_truncation()
        plain.no_padding()
        return plain

    return _cached(tokenizer, "_userlm_plain_tokenizer", build)


__all__ = ["WORD_JOINER", "EncodedPrompt", "encode_as_text", "encode_rendered", "server_text"]
