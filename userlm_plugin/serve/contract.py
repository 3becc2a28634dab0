"""The one fact of the serve protocol that clients and tests need without importing the app (import-light)."""

END_FINISH_REASON = "end_conversation"
"""`finish_reason` of a response in which the simulated user ended the conversation (content is the literal
`<|endconversation|>`, so clients that drop unknown finish reasons still see the end)."""
