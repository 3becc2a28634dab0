"""The simulator-quality probe eval (the paper's intrinsic robustness probes): `task.py` builds it (one next user
turn per probe sample, scored by `scoring/quality`), `dataset.py` loads the in-repo probe sets in `probes/` or the
paper's hub sources."""
