"""Is the assistant's answer right? Code and math answer checking, as Lost in Conversation does it (docs/lic.md):
find the answer attempt in an assistant turn, extract it, grade it (code runs isolated: `runner.py`), end the
conversation on the first correct one, score the conversation by its last attempt, and aggregate P / A90 / U."""
