"""glibc's allocator as :mod:`intriguing` tunes it against glibc's own: the same work in fresh processes, alternated,
measured in one run, with whether the results agree bit for bit and each process's peak memory.

glibc gives the free top of its heap back to the kernel once a few MiB of it are free, so the next tensors there are
faulted in and zeroed by the kernel page by page; :func:`intriguing.hardware.keep_freed_heap`, called when
:mod:`intriguing` is imported, keeps up to 256 MiB of it and fixes the mmap threshold at 32 MiB
(``$INTRIGUING_HOST_ALLOCATOR=default`` keeps glibc's behaviour). The peak memory shows whether the heap grew.
Each worker process, under one of the two settings, times, in this order:

1. the book's minimum-distortion search of ``--examples`` test images on N100-100-10 after 50 L-BFGS iterations on the
   same images (untimed): batches of at most 1,000 rows, the tensors of a few MiB the search and the
   adversarial-training chapter are made of;
2. full-batch L-BFGS of AE400-10's autoencoder stage on ``--images`` training images (``--iterations`` iterations,
   then one of its softmax stage), as the networks chapter trains it (its large tensors are its objective's own buffers);
3. full-batch L-BFGS of N200-200-10 (``--iterations`` iterations) on the same images.

``--rounds`` rounds each run one worker per setting, in alternating order; the table gives each case's best time per
setting and their ratio.

Usage: python benchmarks/host_allocator.py [--images 60000] [--iterations 10] [--examples 1000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch

from intriguing.attacks import min_distortion_attack, random_targets
from intriguing.data import load_mnist
from intriguing.hardware import ALLOCATOR_VAR
from intriguing.models import build_model, get_spec
from intriguing.train import fit

SETTINGS = ("default", "tuned")
CASES = ("search, N100-100-10", "AE400-10 L-BFGS", "N200-200-10 L-BFGS")
"""In the order a worker runs them: the search first, before the full-batch trainings free blocks of 32 MiB or more,
which raise glibc's own thresholds (its mmap threshold to the size of a freed mapped block, up to 32 MiB, its trim
threshold to twice that), so that a process that trained such a network first searches as fast under either setting.
The untimed training of the attacked network before the search frees blocks of up to ``--images`` x 100 floats
(24 MB for 60,000), which already raises them part of the way."""


def _digest(tensors: Iterable[torch.Tensor]) -> str:
    return hashlib.sha256(b"".join(t.detach().contiguous().numpy().tobytes() for t in tensors)).hexdigest()[:16]


def _timed(work: Callable[[], Iterable[torch.Tensor]]) -> dict[str, float | str]:
    start = time.perf_counter()
    result = work()
    return {"seconds": time.perf_counter() - start, "digest": _digest(result)}


def measure(images: int, iterations: int, examples: int) -> dict[str, dict[str, float | str]]:
    """Times the three cases in this process, under whatever allocator setting it was started with.

    Returns:
        case -> {"seconds", "digest" (sha256 prefix of the trained weights or the adversarial images)}.
    """
    train = load_mnist("train").subset(slice(0, images))
    test = load_mnist("test").subset(slice(0, examples))

    def fitted(name: str, caps: dict[str, int]) -> torch.nn.Module:
        spec = get_spec(name)
        torch.manual_seed(spec.seed)
        model = build_model(spec)
        fit(model, spec, train, lbfgs_iterations=caps, conv_epochs=1)
        return model

    def trained(name: str, caps: dict[str, int]) -> Callable[[], Iterable[torch.Tensor]]:
        return lambda: list(fitted(name, caps).parameters())

    attacked = fitted("N100-100-10", {"mlp": 50})

    def searched() -> Iterable[torch.Tensor]:
        model = attacked.eval()
        found = min_distortion_attack(model, test.images, random_targets(test.labels, seed=0), progress=False)
        return [found.adversarial]

    works = dict(zip(CASES, (searched, trained("AE400-10", {"autoencoder": iterations, "ae_softmax": 1}),
                             trained("N200-200-10", {"mlp": iterations})), strict=True))
    return {case: _timed(work) for case, work in works.items()}


def _worker(setting: str, args: argparse.Namespace) -> dict[str, Any]:
    """One fresh process under ``setting``: its measurements and peak resident memory (MiB)."""
    env = {**os.environ, ALLOCATOR_VAR: setting}
    command = [sys.executable, __file__, "--worker", "--images", str(args.images), "--iterations",
               str(args.iterations), "--examples", str(args.examples)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {setting} worker failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60_000)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        out = {"cases": measure(args.images, args.iterations, args.examples),
               "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        print(json.dumps(out))
        return out
    runs: dict[str, list[dict[str, Any]]] = {setting: [] for setting in SETTINGS}
    for round_ in range(args.rounds):
        for setting in SETTINGS if round_ % 2 == 0 else SETTINGS[::-1]:
            runs[setting].append(_worker(setting, args))
    print(f"{torch.get_num_threads()} threads; {args.images:,} training images, {args.iterations} L-BFGS iterations, "
          f"{args.examples:,} searched examples; best of {args.rounds} fresh processes per setting")
    print(f"{'case':24s} {'default (s)':>12s} {'tuned (s)':>10s} {'default ÷ tuned':>16s}  equal bit for bit")
    table: dict[str, Any] = {}
    for case in CASES:
        best = {s: min(float(run["cases"][case]["seconds"]) for run in runs[s]) for s in SETTINGS}
        digests = {run["cases"][case]["digest"] for s in SETTINGS for run in runs[s]}
        table[case] = {**best, "speed-up": best["default"] / best["tuned"], "equal": len(digests) == 1}
        print(f"{case:24s} {best['default']:12.2f} {best['tuned']:10.2f} {table[case]['speed-up']:16.2f}  "
              f"{table[case]['equal']}")
    peaks = {s: max(float(run["peak_mib"]) for run in runs[s]) for s in SETTINGS}
    table["peak memory (MiB)"] = peaks
    print(f"peak resident memory of a worker: default {peaks['default']:,.0f} MiB, tuned {peaks['tuned']:,.0f} MiB")
    return table


if __name__ == "__main__":
    main()
