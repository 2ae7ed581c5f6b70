"""What attacking many examples in one search buys on this machine's device, and that it changes no result.

Measured in one run, on N100-100-10's attacked training images and their random targets:

1. pieces: ``--pieces`` pieces of ``--piece-size`` images attacked one search per piece (as a CPU
   does in ``artifacts.adversarial_set``) against all of them in one search (as a GPU does);
2. targets: the first ``--piece-size`` images attacked towards each of the nine wrong labels in
   nine searches against one search over all nine (``artifacts.min_over_targets``).

Each reports the time ratio (separate / together) and how far the results moved: the relative change of
the mean distortion, and the largest relative change of any one example's. An example's search does
not depend on the others in its batch, but float rounding can differ with the batch's size: with the
network in float32 (``--network-precision float32``) it can tip one of the search's discrete choices, so
single examples may move by a fraction of a per cent; with it in float64, the book's search, they should
not move at all.

Usage: python benchmarks/batching_benchmark.py [--profile smoke|full] [--pieces 12] [--piece-size 5000]
                                               [--network-precision float64|float32]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace

import torch

from intriguing.artifacts import attacked_images, trained_network
from intriguing.attacks import PRECISIONS, AttackResult, default_batch_size, min_distortion_attack
from intriguing.data import N_CLASSES
from intriguing.hardware import device
from intriguing.profiles import get_profile


def timed(run: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float]:
    """``run()``'s distortions and its wall time, the device synchronised on both sides."""
    if device().type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = run()
    if device().type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="networks of this profile (default: $INTRIGUING_PROFILE or full)")
    parser.add_argument("--pieces", type=int, default=12, help="pieces attacked separately, then together")
    parser.add_argument("--piece-size", type=int, default=5000, help="images per piece")
    parser.add_argument("--network-precision", choices=PRECISIONS, default=None,
                        help="the network's arithmetic during the search (default: the profile's)")
    args = parser.parse_args(argv)

    profile = get_profile(args.profile)
    model = trained_network("N100-100-10", profile).model
    images = attacked_images("train", profile).subset(slice(0, args.pieces * args.piece_size))
    settings = replace(profile.search, network_precision=args.network_precision or profile.search.network_precision)

    def attack(x: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor) -> AttackResult:
        return min_distortion_attack(model, x, targets, labels=labels, settings=settings, progress=False)

    def separately() -> torch.Tensor:
        return torch.cat([attack(images.images[i:i + args.piece_size], images.targets[i:i + args.piece_size],
                                 images.labels[i:i + args.piece_size]).distortion
                          for i in range(0, len(images), args.piece_size)])

    alone, t_alone = timed(separately)
    together, t_together = timed(lambda: attack(images.images, images.targets, images.labels).distortion)

    first = images.subset(slice(0, args.piece_size))
    shifts = range(1, N_CLASSES)
    wrong = [(first.labels + shift) % N_CLASSES for shift in shifts]
    nine, t_nine = timed(lambda: torch.cat([attack(first.images, t, first.labels).distortion for t in wrong]))
    one, t_one = timed(lambda: attack(first.images.repeat(len(shifts), 1, 1, 1), torch.cat(wrong),
                                      first.labels.repeat(len(shifts))).distortion)

    def moved(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
        return (abs(a.mean() / b.mean() - 1).item(),
                ((a - b).abs() / b.abs().clamp_min(1e-12)).max().item())

    out = {"pieces_ratio": t_alone / t_together, "targets_ratio": t_nine / t_one}
    out["pieces_mean_change"], out["pieces_max_change"] = moved(together, alone)
    out["targets_mean_change"], out["targets_max_change"] = moved(one, nine)
    print(f"device {device()} (search batch {default_batch_size(device()):,}), profile {profile.name!r}, "
          f"network in {settings.network_precision}")
    print(f"{len(images):,} images in {args.pieces} pieces: {t_alone:.2f} s separately, {t_together:.2f} s together, "
          f"ratio {out['pieces_ratio']:.2f}; mean distortion moved {out['pieces_mean_change']:.1e} (relative), "
          f"one example at most {out['pieces_max_change']:.1e}")
    print(f"{len(first):,} images x 9 targets: {t_nine:.2f} s in nine searches, {t_one:.2f} s in one, "
          f"ratio {out['targets_ratio']:.2f}; mean distortion moved {out['targets_mean_change']:.1e}, "
          f"one example at most {out['targets_max_change']:.1e}")
    return out


if __name__ == "__main__":
    main()
