"""A sample's code tests, kept out of everything Inspect logs (docs/grading.md#tests-stay-out-of-the-log).

Inspect writes each sample's metadata into the eval log, and flushes finished samples to disk while the eval
runs; at the `user` and `process` isolation levels a candidate can read that file. So the tests are not in the
metadata: `hide(tests)` keeps them in this process, keyed by the SHA-256 of their canonical JSON, and returns
the key, which the metadata holds instead (`code_tests_sha256`: it names the tests without revealing them).
The scorer gets them back with `code_tests_of(metadata)`. Building the task's dataset registers them, so scoring
in the process that built it (an eval, `eval-retry`, `inspect score` of the task) finds them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ...errors import ConfigError

KEY = "code_tests_sha256"
"""The metadata field that names a sample's tests."""
INLINE = "code_tests"
"""Tests given inline in metadata (built by hand, e.g. in tests); used as they are."""

_TESTS: dict[str, dict[str, Any]] = {}


def digest(tests: dict[str, Any]) -> str:
    canonical = json.dumps(tests, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def hide(tests: dict[str, Any]) -> str:
    """Keep `tests` in this process; returns the key to put in the sample's metadata."""
    key = digest(tests)
    _TESTS.setdefault(key, tests)
    return key


def code_tests_of(metadata: dict[str, Any]) -> dict[str, Any]:
    """A sample's tests: inline (`code_tests`) or registered under `code_tests_sha256`."""
    inline = metadata.get(INLINE)
    if isinstance(inline, dict):
        return inline
    key = metadata.get(KEY)
    if not isinstance(key, str):
        raise ConfigError(
            f"sample metadata has neither {KEY!r} nor {INLINE!r}: build samples with "
            "userlm_plugin.evals.sharded.dataset"
        )
    tests = _TESTS.get(key)
    if tests is None:
        raise ConfigError(
            f"the code tests {key[:12]}... of this sample are not loaded in this process: score it with the "
            "task that built its dataset (e.g. `inspect eval-retry` or `inspect score` of the same task)"
        )
    return tests
