"""Held-out user-token perplexity as an Inspect eval: `task.py` (samples = held-out conversations; the solver
scores the `user` role's local User LM on them; `scoring/quality`-style pooled metrics). See train/perplexity.py."""
