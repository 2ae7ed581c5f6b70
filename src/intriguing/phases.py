"""Where a loop's time goes: wall time, calls and floating-point work per named phase, for benchmarks.

A loop that owns phases (:func:`intriguing.adversarial_training.adversarial_fit_many`: its training steps,
each pooled layer's searches, its evaluation) takes an optional :class:`PhaseTimes` and wraps each phase in
``with times("name"):``. Without one it does nothing extra. With one, the device is synchronised around
each phase (a CUDA kernel still running would otherwise be billed to the next phase), and with
``count_flops`` each phase runs under torch's ``FlopCounterMode``, which counts the matrix products'
floating-point operations (forward and backward) and slows the phase down: time and count in separate runs.
:func:`matmul_peak` measures what the device's matrix products reach, the limit to hold each phase against.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["PhaseTimes", "matmul_peak"]


class PhaseTimes:
    """Seconds, calls and (with ``count_flops``) matrix-product FLOPs per phase.

    Args:
        dev: the device whose queued work is waited for at each phase's start and end.
        count_flops: count each phase's FLOPs with ``torch.utils.flop_counter.FlopCounterMode``.
    """

    def __init__(self, dev: torch.device | str = "cpu", count_flops: bool = False) -> None:
        self.dev, self.count_flops = torch.device(dev), count_flops
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.flops: dict[str, int] = defaultdict(int)

    def _sync(self) -> None:
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        self._sync()
        start = time.perf_counter()
        if self.count_flops:
            from torch.utils.flop_counter import FlopCounterMode

            with FlopCounterMode(display=False) as counter:
                yield
            self.flops[phase] += counter.get_total_flops()
        else:
            yield
        self._sync()
        self.seconds[phase] += time.perf_counter() - start
        self.calls[phase] += 1


def matmul_peak(dev: torch.device | str = "cpu", size: int = 2048, repeats: int = 5,
                dtype: torch.dtype = torch.float32) -> float:
    """FLOP/s of the best of ``repeats`` (size × size) @ (size × size) products on ``dev`` in ``dtype``: what
    this device's matrix products reach (TF32 as torch is set; the book's training leaves it off)."""
    dev = torch.device(dev)
    a = torch.randn(size, size, device=dev, dtype=dtype)
    b = torch.randn(size, size, device=dev, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):  # the first one warms up
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        start = time.perf_counter()
        a @ b
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best
