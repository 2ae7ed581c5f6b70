"""``squared_norm`` against ``x.pow(2).sum(dims)``: the value and gradient of the book's two largest squared norms,
measured in one run, with whether they agree bit for bit.

1. The sparse autoencoder's reconstruction error, ½ mean over images of Σ (x̂ − x)², on ``--images`` MNIST
   training images (60,000: AE400-10's training set) against reconstructions in (0, 1).
2. The search's distortion term, Σ (z − x)² per example, on ``--rows`` examples (1,000: a CPU search batch).

For each: the best of ``--repeats`` wall times of each form, their ratio, and whether values and gradients are equal.

Usage: python benchmarks/squared_norm.py [--images 60000] [--rows 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import Tensor

from intriguing.data import load_mnist
from intriguing.norms import squared_norm


def _time(loss: Callable[[Tensor], Tensor], x: Tensor, repeats: int) -> tuple[float, Tensor, Tensor]:
    """The best wall time of ``loss(x)`` and its gradient, with the value and gradient."""
    best = float("inf")
    for _ in range(repeats):
        leaf = x.detach().clone().requires_grad_(True)
        start = time.perf_counter()
        value = loss(leaf)
        value.backward()
        best = min(best, time.perf_counter() - start)
    assert leaf.grad is not None
    return best, value.detach(), leaf.grad


def main(argv: list[str] | None = None) -> dict[str, dict[str, float | bool]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60_000)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    generator = torch.Generator().manual_seed(0)
    images = load_mnist("train").images[:args.images].flatten(1)
    reconstructions = torch.rand(images.shape, generator=generator)
    points = load_mnist("test").images[:args.rows].flatten(1)
    moved = (points + 0.05 * torch.randn(points.shape, generator=generator)).clamp(0, 1)
    cases = {
        "autoencoder's reconstruction error": (
            reconstructions,
            lambda r: 0.5 * (r - images).pow(2).sum(1).mean(),
            lambda r: 0.5 * squared_norm(r - images, 1).mean()),
        "search's distortion term": (
            moved,
            lambda z: (z - points).pow(2).sum(1).sum(),
            lambda z: squared_norm(z - points, 1).sum()),
    }
    print(f"{torch.get_num_threads()} threads, best of {args.repeats}")
    out: dict[str, dict[str, float | bool]] = {}
    for name, (x, power_rule, ours) in cases.items():
        power_s, power_value, power_grad = _time(power_rule, x, args.repeats)
        ours_s, ours_value, ours_grad = _time(ours, x, args.repeats)
        out[name] = {"power rule (s)": power_s, "squared_norm (s)": ours_s, "speed-up": power_s / ours_s,
                     "equal": bool(torch.equal(power_value, ours_value) and torch.equal(power_grad, ours_grad))}
        print(f"{name} {tuple(x.shape)}: pow(2).sum {1000 * power_s:.2f} ms, squared_norm {1000 * ours_s:.2f} ms, "
              f"{out[name]['speed-up']:.2f}x; value and gradient equal bit for bit: {out[name]['equal']}")
    return out


if __name__ == "__main__":
    main()
