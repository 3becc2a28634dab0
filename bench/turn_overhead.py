"""Time per conversation turn with instant models, split into ours vs. Inspect's own machinery.

Bar (issue 3): our share (simulator + turn bookkeeping + store writes + transcript spans/info events) must stay
under 5 ms per turn.

Two tasks run side by side in one `eval()` (one sample at a time, so timings are not interleaved):
- `ours`: `simulated_user(scripted_user(...))` with a scripted mockllm assistant. Its solver is timed as a whole and
  the `generate` it is handed is timed separately, so per turn: ours = solver time - generate time.
- `bare`: the same conversation driven by a bare loop (append the user message, `await generate(state)`), no
  simulator and no bookkeeping: Inspect's own per-turn cost (generate, ModelEvent, message-limit checks, the mock
  model itself).
`ours_total - bare` is printed as a cross-check of the direct split.

Usage: .venv/bin/python bench/turn_overhead.py [--turns 8 20 50] [--samples 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from typing import Any

from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.model import ChatMessage, ChatMessageUser, GenerateConfig, ModelOutput, ModelUsage, get_model
from inspect_ai.solver import Generate, Solver, TaskState, solver

from userlm_plugin import scripted_user, simulated_user

TIMINGS: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
"""task -> [(solver seconds, seconds inside generate, assistant turns)] per sample."""


def instant_reply(
    input: list[ChatMessage], tools: Any, tool_choice: Any, config: GenerateConfig
) -> ModelOutput:
    output = ModelOutput.from_content(model="mockllm/model", content="ok, noted.")
    output.usage = ModelUsage(
        input_tokens=10, output_tokens=3, total_tokens=13
    )  # no tokenizer (docs/inspect.md#mockllm-needs-usage-offline)
    return output


def timed(label: str, inner: Solver) -> Solver:
    @solver(name=f"timed_{label}")
    def wrapper() -> Solver:
        async def solve(state: TaskState, generate: Generate) -> TaskState:
            inside = 0.0

            async def timed_generate(state: TaskState, *args: Any, **kwargs: Any) -> TaskState:
                nonlocal inside
                start = time.perf_counter()
                try:
                    return await generate(state, *args, **kwargs)
                finally:
                    inside += time.perf_counter() - start

            start = time.perf_counter()
            state = await inner(state, timed_generate)  # type: ignore[arg-type]
            total = time.perf_counter() - start
            TIMINGS[label].append((total, inside, sum(m.role == "assistant" for m in state.messages)))
            return state

        return solve

    return wrapper()


@solver
def bare_loop(turns: list[str]) -> Solver:
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        state.messages = []
        for text in turns:
            state.messages.append(ChatMessageUser(content=text))
            state = await generate(state)
        return state

    return solve


def measure(n_turns: int, n_samples: int) -> dict[str, float]:
    TIMINGS.clear()
    turns = [f"user message number {i}, with a few more words" for i in range(n_turns)]
    dataset = [Sample(id=i, input="-", metadata={"intent": "bench"}) for i in range(n_samples)]
    ours = Task(
        name="ours",
        dataset=dataset,
        solver=timed("ours", simulated_user(scripted_user(turns), max_turns=n_turns)),
    )
    bare = Task(name="bare", dataset=dataset, solver=timed("bare", bare_loop(turns)))
    model = get_model("mockllm/model", custom_outputs=instant_reply, memoize=False)
    with tempfile.TemporaryDirectory() as log_dir:
        logs = eval([ours, bare], model=model, display="none", log_dir=log_dir, max_samples=1, max_tasks=1)
    assert all(log.status == "success" for log in logs), [log.error for log in logs]
    ours_rows, bare_rows = TIMINGS["ours"][1:], TIMINGS["bare"][1:]  # first sample of each warms caches
    assert all(t == n_turns for _, _, t in ours_rows + bare_rows)

    def per_turn_ms(values: list[float]) -> float:
        return 1000 * statistics.median(values) / n_turns

    return {
        "turns": n_turns,
        "ours_ms": per_turn_ms([total - inside for total, inside, _ in ours_rows]),
        "inspect_ms": per_turn_ms([inside for _, inside, _ in ours_rows]),
        "ours_total_ms": per_turn_ms([total for total, _, _ in ours_rows]),
        "bare_ms": per_turn_ms([total for total, _, _ in bare_rows]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, nargs="+", default=[8, 20, 50])
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    print("per user turn, median over samples (ms)")
    print(f"{'turns':>5} {'ours':>8} {'inspect':>8} {'ours+insp':>10} {'bare loop':>10} {'total-bare':>11}")
    for n in args.turns:
        r = measure(n, args.samples)
        print(
            f"{n:>5} {r['ours_ms']:>8.3f} {r['inspect_ms']:>8.3f} {r['ours_total_ms']:>10.3f} "
            f"{r['bare_ms']:>10.3f} {r['ours_total_ms'] - r['bare_ms']:>11.3f}"
        )
    print("bar: ours < 5 ms per turn")


if __name__ == "__main__":
    main()
