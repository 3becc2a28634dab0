"""The facts of the serve protocol that clients and tests need without importing the app (import-light).

The end of the conversation (docs/serving.md "The end signal"): `finish_reason` stays OpenAI's `"stop"` (LiteLLM
rewrites unknown finish reasons to `"stop"` with a warning, and the OpenAI SDK types only OpenAI's values), the
message content is exactly `END_CONTENT`, and the guardrail record says `"end_conversation": true`. A turn that
merely *spells* the end string never carries it literally (runtime/template.py `defuse_end`), so
`content == END_CONTENT` and the record's flag always agree.
"""

from ..turns import END_CONVERSATION, USERLM_METADATA_KEY

END_CONTENT = END_CONVERSATION
"""`choices[0].message.content` of a response in which the simulated user ended the conversation."""
RECORD_FIELD = USERLM_METADATA_KEY
"""Top-level response field (and field of the final stream chunk) holding the guardrail record."""
END_FIELD = "end_conversation"
"""`response[RECORD_FIELD][END_FIELD]`: true when the simulated user ended the conversation."""
OPEN_PATHS = frozenset({"/health"})
"""Paths answered without the API key (liveness probes); every other path needs it when one is set."""
