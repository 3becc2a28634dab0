"""All of the runtime's torch work (loading weights, batched generation) runs on one dedicated thread.

Why: PyTorch's CPU thread pool (OpenMP) belongs to the thread that calls into it. When one thread loads a model
and another runs it, two pools compete for the cores: on this project's 2-core machine a batched `generate` of
the tiny test model took 2.7x longer on the engine's thread than on the thread that had loaded it (280 ms vs
105 ms), and the same work on one thread that did both ran at full speed. Funnelling every torch call through one
thread keeps one pool; on CUDA it also keeps one thread owning the context and the default stream.

The thread is started lazily and shared by every model in the process (one device's work is serialised anyway).

It also sets how many CPU threads torch uses for one op (`cpu_threads`): one core fewer than the machine has,
because this process keeps a second thread busy (Inspect's event loop renders prompts and logs while the model
runs), and an OpenMP team whose member is descheduled stalls every op at its barrier. On this project's 2-core
machine under load a batched decode step of the tiny test model took 41 ms with 2 threads and 2.1 ms with 1.
`USERLM_TORCH_THREADS` overrides it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()
_thread_ident: int | None = None


def cpu_threads() -> int:
    """Intra-op CPU threads for the torch thread (see the module docstring)."""
    import torch

    override = os.environ.get("USERLM_TORCH_THREADS", "").strip()
    if override.isdigit() and int(override) > 0:
        return int(override)
    return max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) - 1))


def _mark() -> None:
    global _thread_ident
    _thread_ident = threading.get_ident()
    import torch

    torch.set_num_threads(cpu_threads())


def _get() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="userlm-torch", initializer=_mark
            )
        return _executor


def submit(fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
    """Schedule `fn` on the torch thread."""
    return _get().submit(fn, *args, **kwargs)


def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `fn` on the torch thread and wait for it (runs inline when already on that thread)."""
    if threading.get_ident() == _thread_ident:
        return fn(*args, **kwargs)
    return submit(fn, *args, **kwargs).result()


def on_torch_thread() -> bool:
    return threading.get_ident() == _thread_ident
