"""`userlm/<model> -M base_url=http://host:8000/v1`: UserLM drafts drawn by an OpenAI-compatible server (torch-free).

    inspect eval ... --model-role user=userlm/microsoft/UserLM-8b -M base_url=http://gpu-host:8000/v1

Why `/v1/completions` and never the chat endpoint: a hosted chat endpoint renders a generic template that opens an
*assistant* turn, trusts one eos, may strip `<|endconversation|>` and cannot ban a token at one position. So we
render the prompt with the model's own template here (template.py: it ends by opening a *user* turn), send it as a
raw completion, stop on every eos of the checkpoint, and apply the paper's guardrails (Appendix D.1,
guardrails.py) with what every such server has:

* `<|endconversation|>` ban: `logit_bias={id: -100}` on every call of a draft (the OpenAI maximum; vLLM clamps to
  it, llama.cpp adds it to the logit: a ban in practice).
* First-content-token filter: a short *head* call (`first_token_head` tokens, default 2: UserLM's leading newline
  plus the first word) with the openers banned by `logit_bias`; we keep its text up to and including the first
  non-whitespace token and drop the rest, then a *continuation* call with that prefix appended and no opener ban.
  So the ban acts at that one position only, as in the local sampler (prefix caching makes the second call cheap).
  A multi-token banned sequence is followed token by token with 1-token calls.
* Length/repetition resampling and the `end_threshold` rule: the shared loop in drafting.py.
* The end is the end *token*, not its spelling (docs/serving.md "Which end a server drew"): while ending is banned
  any end string is rejected as an end attempt; while it is allowed each call asks for `logprobs: 0` and only a
  generated token whose string is the end token ends the draft (`-M end_detection=text`, or a server that sends
  no token strings: the end string in the text does, recorded).

Message contents stay text on the server too. `prompt_format=token_ids` sends our ids (contents already encoded
as text). `prompt_format=text` (the default: every server takes it) sends the rendered text, which the server
re-tokenizes with control tokens parsed, so a control-token string inside a message's content is broken up by an
invisible WORD JOINER first (prompt_encoding.server_text); benign prompts are sent unchanged.

Token ids in `logit_bias` come from our copy of the served model's tokenizer (`-M tokenizer=`, default the model
name; a hub id, a folder or a `.gguf` file): only the tokenizer is loaded, never the weights. The first call of each
draft checks that the server counted the prompt as our tokenizer does, so a wrong tokenizer fails loudly instead of
banning the wrong tokens.

log P(end) at the first content position (`Draft.end_logprob`) is read from the server's `logprobs` when asked
(`-M end_logprobs`, or automatically for the `end_threshold` rule): logprobs.py. Errors: http.py.
"""

from .backend import API_KEY_ENV, BAN_BIAS, RemoteBackend
from .tokenizer import load_tokenizer

__all__ = ["API_KEY_ENV", "BAN_BIAS", "RemoteBackend", "load_tokenizer"]
