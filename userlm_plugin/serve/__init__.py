"""`userlm-plugin serve`: the guardrailed, batched User LM as an OpenAI-compatible endpoint for other frameworks.

Import-light: the app (Starlette, Inspect, the runtime) is imported when a server is built.
"""

from __future__ import annotations

END_FINISH_REASON = "end_conversation"
"""`finish_reason` of a response in which the simulated user ended the conversation (content is the literal
`<|endconversation|>`). Kept equal to `app.END_FINISH_REASON`."""

__all__ = ["END_FINISH_REASON"]
