"""What the minimum-distortion search costs a device beyond its arithmetic, counted in one run.

For the book's search and the adversarial-training pools' search (the profile's settings) on one network's test
images and random targets: the network's calls (the box L-BFGS calls it once per line-search trial, on the
examples still trying a step), the points it was evaluated at, the tensor operations of the whole search (each a
kernel launch on a GPU) and its host reads (scalar reads and ``nonzero``, each a synchronisation on a GPU), counted with torch's
profiler in a second, untimed run; and the wall time, best of ``--repeats``. On a CPU the wall time follows the
arithmetic and the memory traffic; on a GPU, for MNIST-sized batches, it follows the operations and host reads.

Usage: python benchmarks/search_overhead.py [--profile smoke|full] [--examples 1000] [--network N100-100-10]
                                            [--repeats 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity
from torch.profiler import profile as profiled

from intriguing.artifacts import trained_network
from intriguing.attacks import min_distortion_attack, random_targets
from intriguing.data import load_mnist
from intriguing.profiles import get_profile

HOST_READS = ("aten::_local_scalar_dense", "aten::nonzero")
"""The operations that read a device's result on the host: ``.item()``/``bool()``/``int()`` and ``nonzero``."""


def measure(profile_name: str | None, examples: int, network: str, repeats: int) -> list[dict[str, Any]]:
    """One row per search: ``calls``, ``points``, ``operations``, ``host reads``, ``seconds`` (best of ``repeats``),
    ``success`` (fraction) and ``distortion`` (mean RMS over the successes)."""
    profile = get_profile(profile_name)
    test = load_mnist("test")
    images, labels = test.images[:examples], test.labels[:examples]
    targets = random_targets(labels, seed=0)
    model = trained_network(network, profile).model
    counted = [0, 0]

    def count(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        counted[0] += 1
        counted[1] += len(args[0])

    rows = []
    for search, settings in {"book": profile.search, "pools": profile.adversarial_training.search}.items():
        def attack() -> Any:
            return min_distortion_attack(model, images, targets, labels=labels, settings=settings, progress=False)

        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = attack()
            seconds.append(time.perf_counter() - start)
        hook = model.register_forward_pre_hook(count)
        counted[:] = [0, 0]
        try:
            with profiled(activities=[ProfilerActivity.CPU]) as prof:
                attack()
        finally:
            hook.remove()
        ops = {event.key: event.count for event in prof.key_averages()}
        rows.append({"network": network, "search": search, "calls": counted[0] - 1, "points": counted[1] - 1,
                     "operations": sum(n for key, n in ops.items() if key.startswith("aten::")),
                     "host reads": sum(ops.get(key, 0) for key in HOST_READS), "seconds": min(seconds),
                     "success": result.success.double().mean().item(),
                     "distortion": result.distortion[result.success].mean().item()})
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="networks of this profile (default: $INTRIGUING_PROFILE or full)")
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--network", default="N100-100-10")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    rows = measure(args.profile, args.examples, args.network, args.repeats)
    print(f"{args.examples} test images, random targets, {torch.get_num_threads()} threads, on the profile's device; "
          f"best of {args.repeats}")
    print(f"{'network':12s} {'search':6s} {'calls':>6s} {'points':>7s} {'operations':>10s} {'host reads':>10s} "
          f"{'seconds':>8s} {'success':>8s} {'distortion':>10s}")
    for row in rows:
        print(f"{row['network']:12s} {row['search']:6s} {row['calls']:6d} {row['points']:7d} {row['operations']:10d} "
              f"{row['host reads']:10d} {row['seconds']:8.3f} {row['success']:8.4f} {row['distortion']:10.5f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return rows

if __name__ == "__main__":
    main()
