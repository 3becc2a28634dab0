"""The sharded coding and math evals (the paper's §4 extrinsic evaluation on Lost in Conversation's data):
`task.sharded_task` builds either, `dataset.py` renders each setting's samples, `lic.py` / `humaneval.py` load
the data, `prompts/` holds the assistant's system prompts."""
