"""The agentic coding eval (docs/agents.md#the-agentic-coding-eval): Lost in Conversation's sharded code
instructions given to a `react` agent with a Python tool, the shards known only to the simulated user, who answers
the agent's `ask_user` questions and its messages; scored as the coding eval scores answers. `task.py` builds it,
`tools.py` is the confined Python tool, `prompts/` the agent's instructions."""
