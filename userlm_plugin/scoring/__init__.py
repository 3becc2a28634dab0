"""Scoring, in two unrelated halves:

* `answers/`: is the assistant's answer right? Answer-attempt detection and extraction, the isolated code runner,
  the code and math scorers, and Lost in Conversation's P / A90 / U reliability metrics.
* `quality/`: is the simulated user human-like? The paper's simulator-quality metrics and the judge scorers.
"""
