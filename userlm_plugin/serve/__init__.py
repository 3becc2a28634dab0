"""`userlm-plugin serve`: the guardrailed, batched User LM as an OpenAI-compatible endpoint for other frameworks.

Import-light: the app (Starlette, Inspect, the runtime) is imported when a server is built.
"""

from __future__ import annotations

from .contract import END_CONTENT, END_FIELD, RECORD_FIELD

__all__ = ["END_CONTENT", "END_FIELD", "RECORD_FIELD"]
