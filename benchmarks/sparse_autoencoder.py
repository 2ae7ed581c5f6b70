"""The sparse autoencoder's objective by hand in buffers it owns (``SparseAutoencoderObjective``, what training
uses) against the same loss through autograd (``autograd_loss``), measured in one run on MNIST training images.

1. One value and gradient each way: the best of ``--repeats`` wall times, their ratio, whether the values are equal
   and the largest relative difference of a parameter's gradient.
2. ``--iterations`` L-BFGS iterations of AE400-10's autoencoder each way from the same initial weights
   (``train.minimize_lbfgs``, the book's optimiser): wall times, their ratio and both final losses.

Usage: python benchmarks/sparse_autoencoder.py [--images 60000] [--repeats 3] [--iterations 10]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from intriguing.data import load_mnist
from intriguing.models import AutoencoderClassifier
from intriguing.sparse_autoencoder import SparseAutoencoderObjective, autograd_loss
from intriguing.train import minimize_lbfgs


def _parameters(model: AutoencoderClassifier) -> list[torch.nn.Parameter]:
    return [*model.encoder.parameters(), *model.decoder.parameters()]


def main(argv: list[str] | None = None) -> dict[str, float | bool]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60_000)
    parser.add_argument("--codes", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=10)
    args = parser.parse_args(argv)
    images = load_mnist("train").images[:args.images]
    torch.manual_seed(0)
    initial = AutoencoderClassifier(args.codes)
    model = copy.deepcopy(initial)
    params = _parameters(model)
    objective = SparseAutoencoderObjective(model, images)

    def by_hand() -> torch.Tensor:
        for p in params:
            p.grad = None
        return objective.value_and_gradient()

    def through_autograd() -> torch.Tensor:
        for p in params:
            p.grad = None
        loss = autograd_loss(model, images)
        loss.backward()
        return loss.detach()

    best: dict[str, float] = {}
    found: dict[str, tuple[torch.Tensor, list[torch.Tensor]]] = {}
    for _ in range(args.repeats):
        for name, evaluate in (("autograd", through_autograd), ("by hand", by_hand)):
            start = time.perf_counter()
            value = evaluate()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
            found[name] = value, [p.grad.clone() for p in params if p.grad is not None]
    gradient_difference = max(float((a - b).norm() / b.norm())
                              for a, b in zip(found["by hand"][1], found["autograd"][1], strict=True))
    out: dict[str, float | bool] = {
        "evaluation autograd (s)": best["autograd"], "evaluation by hand (s)": best["by hand"],
        "evaluation speed-up": best["autograd"] / best["by hand"],
        "values equal": bool(torch.equal(found["by hand"][0], found["autograd"][0])),
        "largest relative gradient difference": gradient_difference,
    }
    print(f"{torch.get_num_threads()} threads, {len(images)} images, {args.codes} codes, best of {args.repeats}")
    print(f"value and gradient: autograd {best['autograd']:.3f} s, by hand {best['by hand']:.3f} s, "
          f"{out['evaluation speed-up']:.2f}x; values equal: {out['values equal']}; "
          f"largest relative gradient difference {gradient_difference:.1e}")
    for name in ("autograd", "by hand"):
        model = copy.deepcopy(initial)
        hand = SparseAutoencoderObjective(model, images)
        gradient = hand.value_and_gradient if name == "by hand" else None
        start = time.perf_counter()
        log = minimize_lbfgs(model, _parameters(model), (lambda m=model: autograd_loss(m, images)) if gradient is None
                             else hand, args.iterations, gradient=gradient, desc=name)
        out[f"L-BFGS {name} (s)"] = time.perf_counter() - start
        out[f"L-BFGS {name} final loss"] = log.losses[-1]
    out["L-BFGS speed-up"] = out["L-BFGS autograd (s)"] / out["L-BFGS by hand (s)"]
    print(f"{args.iterations} L-BFGS iterations: autograd {out['L-BFGS autograd (s)']:.2f} s "
          f"(loss {out['L-BFGS autograd final loss']:.6g}), by hand {out['L-BFGS by hand (s)']:.2f} s "
          f"(loss {out['L-BFGS by hand final loss']:.6g}), {out['L-BFGS speed-up']:.2f}x")
    return out


if __name__ == "__main__":
    main()
