"""How close the book's full-batch training runs to this machine's physical limit, from a build's timing record.

The networks chapter's time is almost all full-batch L-BFGS (every iteration evaluates the objective and its
gradient on every training image). For each L-BFGS stage in a timing record (``timings/<profile>.json``, or a
build's ``_build/html/timings.json``) this counts the matrix-product FLOPs of one evaluation with torch's
``FlopCounterMode`` (the network's forward pass and the gradient of its weights, on the stage's training images),
multiplies by the iterations the stage ran (a run to the iteration cap goes on from the window-stopped run's
final state, so only the iterations after it count), and divides by its wall time: a lower bound on the FLOP
rate, since the strong-Wolfe line search may evaluate more than once per iteration. It sets the rate against the matrix-product
peak measured now (:func:`intriguing.phases.matmul_peak`), so run it on the machine that made the record.

Usage: python benchmarks/full_batch_rates.py [timings/full.json] [--json OUT]
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from intriguing.artifacts import training_split
from intriguing.models import AutoencoderClassifier, build_model, get_spec
from intriguing.phases import matmul_peak
from intriguing.profiles import get_profile

STAGES = ("lbfgs", "autoencoder")
"""The full-batch stages counted; the others (the Conv's Adam epochs, the autoencoder's softmax head on fixed
codes) are reported as not counted."""


@functools.cache  # a record holds each network's stages once per replicate and decay mode
def flops_per_example(name: str, stage: str) -> float:
    """Matrix-product FLOPs of one example's objective and weight gradient in ``stage`` of network ``name``."""
    model = build_model(name)
    images = torch.rand(8, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        if stage == "autoencoder":
            if not isinstance(model, AutoencoderClassifier):
                raise ValueError(f"{name} has no autoencoder stage")
            loss = (model.reconstruct(images) - images).pow(2).sum()
        else:
            loss = model(images).logsumexp(1).sum()
        loss.backward()
    return counter.get_total_flops() / len(images)


def _identity(stage: dict[str, Any]) -> tuple[Any, ...]:
    return stage["name"], stage["stage"], stage.get("replicate"), stage.get("decay_mode"), stage.get("seed")


def rates(record: dict[str, Any], peak: float) -> list[dict[str, Any]]:
    """One row per training stage of ``record``: seconds, iterations, the ``iterations run`` in it and, for the
    full-batch stages, GFLOP/s and its share of ``peak`` (FLOP/s)."""
    profile = get_profile(record["profile"])
    sizes: dict[str, int] = {}
    stopped = {_identity(stage): stage["iterations"] for stage in record["training"] if not stage.get("to_cap")}
    rows = []
    for stage in record["training"]:
        name, kind, seconds = stage["name"], stage["stage"], stage["seconds"]
        # A run to the cap goes on from the window-stopped run's final state: its seconds are those after it.
        before = stopped.get(_identity(stage), 0) if stage.get("to_cap") else 0
        row: dict[str, Any] = {"network": name, "stage": kind, "seconds": seconds,
                               "iterations": stage.get("iterations"), "iterations run": stage.get("iterations", 0) - before}
        if kind in STAGES and seconds > 0:
            train_set = get_spec(name).train_set
            if train_set not in sizes:
                sizes[train_set] = len(training_split(train_set, profile))
            flops = flops_per_example(name, kind) * sizes[train_set] * row["iterations run"]
            row |= {"GFLOP/s": flops / seconds / 1e9, "of peak (%)": 100 * flops / seconds / peak}
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", nargs="?", default="timings/full.json", type=Path)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    record = json.loads(args.record.read_text(encoding="utf-8"))
    if not record.get("training"):
        raise ValueError(f"{args.record} records no training stage")
    peak = matmul_peak("cpu")
    rows = rates(record, peak)
    print(f"{args.record}: profile {record['profile']!r}, {record['machine']}; matrix-product peak now "
          f"{peak / 1e9:.1f} GFLOP/s (float32)")
    print(f"{'network':14s} {'stage':12s} {'seconds':>8s} {'iterations':>10s} {'run here':>8s} {'GFLOP/s':>8s} "
          f"{'of peak %':>9s}")
    for row in rows:
        rate = f"{row['GFLOP/s']:8.1f} {row['of peak (%)']:9.0f}" if "GFLOP/s" in row else "  (not counted)"
        print(f"{row['network']:14s} {row['stage']:12s} {row['seconds']:8.1f} {row['iterations'] or '':>10} "
              f"{row['iterations run']:8d} {rate}")
    counted = [row for row in rows if "GFLOP/s" in row]
    seconds = sum(row["seconds"] for row in counted)
    flops = sum(row["GFLOP/s"] * row["seconds"] for row in counted) * 1e9
    out = {"peak_gflops": peak / 1e9, "rows": rows, "counted_seconds": seconds,
           "counted_gflops": flops / seconds / 1e9 if seconds else 0.0,
           "counted_of_peak": 100 * flops / seconds / peak if seconds else 0.0,
           "uncounted_seconds": sum(row["seconds"] for row in rows if "GFLOP/s" not in row)}
    print(f"full-batch stages: {seconds:.0f} s at {out['counted_gflops']:.1f} GFLOP/s, {out['counted_of_peak']:.0f} % "
          f"of the peak (a lower bound); other training stages {out['uncounted_seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")
    return out


if __name__ == "__main__":
    main()
