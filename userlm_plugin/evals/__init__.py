"""The evals this plugin ships, one folder each (task factory, dataset, prompts); the files under the repository's
`evals/` are thin `@task` wrappers around them so `inspect eval evals/<name>.py` works from a checkout.

* `sharded/`: the paper's extrinsic evaluation, coding and math conversations on Lost in Conversation's sharded
  instructions (or HumanEval), in every setting (full, concat, sharded, userlm, ...).
* `simulator_quality/`: the paper's intrinsic simulator-robustness probes, run against any simulator.
"""
