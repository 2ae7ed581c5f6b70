"""Networks per second: the adversarial-training chapter's networks trained together against one at a time.

Measured in one run, on this machine's device, with the profile's adversarial-training settings (its
first recipe, its epochs cut to ``--epochs``) on its training images: ``--networks`` 784-100-100-10
networks of one variant (``--variant``: ``weight-decay`` without pools, or ``pools`` at every layer), each
with its own seed, trained one after another (``adversarial_fit``) and then all together
(``adversarial_fit_many``). It reports both times, networks per second, their ratio, and the largest
difference between a network trained alone and the same network trained with the others.

Usage: python benchmarks/stacked_training.py [--profile smoke|full] [--networks 5] [--epochs 1]
                                             [--variant weight-decay|pools]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from intriguing.adversarial_training import adversarial_fit, adversarial_fit_many, seeded_networks
from intriguing.artifacts import training_split
from intriguing.hardware import device
from intriguing.models import FC_DECAY
from intriguing.profiles import get_profile

HIDDEN = (100, 100)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--networks", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--variant", choices=["weight-decay", "pools"], default="weight-decay")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    settings = replace(profile.adversarial_recipes[0].applied(profile.adversarial_training), epochs=args.epochs,
                       pool_start=0, pool_layers=(0, 1, 2) if args.variant == "pools" else ())
    data = training_split("train", profile)
    seeds = list(range(args.networks))
    print(f"{args.networks} networks 784-{HIDDEN[0]}-{HIDDEN[1]}-10, {args.variant}, {args.epochs} epoch(s) on "
          f"{len(data):,} images, on {device()} with {torch.get_num_threads()} thread(s)")

    alone = seeded_networks(HIDDEN, seeds)
    start = time.perf_counter()
    for model, seed in zip(alone, seeds):
        adversarial_fit(model, data, settings, weight_decay=FC_DECAY, seed=seed, progress=False)
    one_at_a_time = time.perf_counter() - start

    together = seeded_networks(HIDDEN, seeds)
    start = time.perf_counter()
    adversarial_fit_many(together, data, settings, weight_decay=FC_DECAY, seeds=seeds, progress=False)
    stacked = time.perf_counter() - start

    difference = max((p - q).abs().max().item() for a, b in zip(alone, together)
                     for p, q in zip(a.parameters(), b.parameters()))
    out = {"one_at_a_time_seconds": one_at_a_time, "together_seconds": stacked,
           "networks_per_second_alone": args.networks / one_at_a_time,
           "networks_per_second_together": args.networks / stacked,
           "speedup": one_at_a_time / stacked, "largest_weight_difference": difference}
    print(f"one at a time: {one_at_a_time:.1f} s ({out['networks_per_second_alone']:.3f} networks/s)")
    print(f"together:      {stacked:.1f} s ({out['networks_per_second_together']:.3f} networks/s)")
    print(f"speed-up (one at a time / together): {out['speedup']:.2f}x")
    print(f"largest weight difference, alone vs together: {difference:.1e}")
    return out


if __name__ == "__main__":
    main()
