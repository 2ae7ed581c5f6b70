"""Where the adversarial-training chapter's time goes: stacks of pooled networks split into their phases, and the
chapter's time extrapolated from them.

Measured in one run, on this machine's device, with the profile's adversarial-training settings (its first recipe):
``--networks`` 784-100-100-10 networks trained together for ``--warm-epochs`` epochs without pools (the chapter's
pools start on networks trained for some epochs, whose searches cost more than an untrained network's), then for
``--epochs`` epochs with pools at every layer. The phases (:mod:`intriguing.phases`) are the training steps
without pools (the warm epochs), the training steps with pools, each pooled layer's searches (every network's
refreshes) and the evaluation after each epoch. For each: wall time, calls, matrix-product FLOPs (counted in a
second, untimed run of the same work) and FLOP/s against the device's measured matrix-product peak
(:func:`intriguing.phases.matmul_peak`): how far each phase is from the physical limit.

``--search C,I`` sets the pools' search to C c steps of I L-BFGS iterations (default: the profile's).
``--stacked-search on|off`` searches the networks' pools together or network by network (default: as
:data:`intriguing.adversarial_training.STACKED_SEARCH` says for the device); ``--compare-stacked`` also times the
other way and reports the searches' speed-up and the largest change of a refresh's median distortion.

``--chapter`` also measures a stack of one network and the book's search on 1,000 test images of one network,
and from the measured rates (seconds per training step by stack size and pooled layers, per searched example of
each layer, per attacked network) adds up every stack the chapter trains (:func:`chapter_plan`): an estimate of
the chapter's time on this device, cold, at the profile's settings.

Usage: python benchmarks/adversarial_phases.py [--profile smoke|full] [--networks 5] [--epochs 1] [--warm-epochs 4]
                                               [--search 4,20] [--pool-size N] [--stacked-search on|off] [--compare-stacked]
                                               [--chapter] [--no-flops] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import torch

from intriguing.adversarial_training import STACKED_SEARCH, AdversarialTrainingSettings, adversarial_fit_many, seeded_networks
from intriguing.artifacts import attacked_images, training_split
from intriguing.attacks import min_distortion_attack
from intriguing.chapters import adversarial_training as chapter
from intriguing.data import load_mnist
from intriguing.hardware import device
from intriguing.models import FC_DECAY
from intriguing.phases import PhaseTimes, matmul_peak
from intriguing.profiles import Profile, get_profile

HIDDEN = (100, 100)
LAYERS = (0, 1, 2)


def measure(profile: Profile, settings: AdversarialTrainingSettings, networks: int, epochs: int, warm_epochs: int,
            stacked: bool, count_flops: bool = False, compare: bool = False) -> dict[str, object]:
    """One stack of ``networks`` pooled networks: the phases' times (and FLOPs), the examples each layer searched,
    and with ``compare`` the searches timed the other way too."""
    data, test, dev = training_split("train", profile), load_mnist("test"), device()
    seeds = list(range(networks))
    warm_times = PhaseTimes(dev)
    warm = seeded_networks(HIDDEN, seeds)
    if warm_epochs:
        adversarial_fit_many(warm, data, replace(settings, epochs=warm_epochs, pool_start=0, pool_layers=()),
                             weight_decay=FC_DECAY, seeds=seeds, progress=False, times=warm_times)
    warmed = [model.state_dict() for model in warm]
    pooled = replace(settings, epochs=epochs, pool_start=0, pool_layers=LAYERS)

    def run(times: PhaseTimes, stacked: bool) -> list:
        models = seeded_networks(HIDDEN, seeds)
        for model, state in zip(models, warmed):
            model.load_state_dict(state)
        return adversarial_fit_many(models, data, pooled, weight_decay=FC_DECAY, seeds=seeds, evaluation=test,
                                    progress=False, times=times, stacked_search=stacked)

    timed = PhaseTimes(dev)
    curves = run(timed, stacked)
    counted = PhaseTimes(dev, count_flops=True)
    if count_flops:
        run(counted, stacked)
    seconds = dict(timed.seconds)
    calls = dict(timed.calls)
    if warm_epochs:
        seconds["training steps, no pools"] = warm_times.seconds["training steps"]
        calls["training steps, no pools"] = warm_times.calls["training steps"]
    out: dict[str, object] = {
        "networks": networks, "stacked_search": stacked, "seconds": seconds, "calls": calls,
        "flops": dict(counted.flops) if count_flops else {},
        "searched": {k: sum(r["replaced"] for c in curves for r in c.refresh_log if r["layer"] == k) for k in LAYERS}}
    if compare:
        other = PhaseTimes(dev)
        other_curves = run(other, not stacked)
        search = {flag: sum(v for phase, v in times.seconds.items() if phase.startswith("search"))
                  for flag, times in ((stacked, timed), (not stacked, other))}
        medians = [(a["median distortion"], b["median distortion"]) for ca, cb in zip(curves, other_curves)
                   for a, b in zip(ca.refresh_log, cb.refresh_log)]
        out |= {"search_seconds_one_by_one": search[False], "search_seconds_together": search[True],
                "search_speedup_together": search[False] / search[True],
                "largest_median_distortion_change": max((abs(a - b) / a for a, b in medians if a == a and a > 0),
                                                        default=0.0)}
    return out


def step_seconds(runs: dict[int, dict], stack: int, pooled_layers: int, fgsm: bool = False) -> float:
    """Seconds per training step of a stack of ``stack`` networks with ``pooled_layers`` pooled layers, on a line (in
    the stack's size and in the pooled layers) through the measured stacks. A fast-gradient-sign step
    runs the network twice forward and backward: counted as two steps without pools."""
    sizes = sorted(runs)

    def at(size: int) -> float:
        run = runs[size]
        plain = run["seconds"]["training steps, no pools"] / run["calls"]["training steps, no pools"]
        pools = run["seconds"]["training steps"] / run["calls"]["training steps"]
        return (2 * plain) if fgsm else plain + (pools - plain) * pooled_layers / len(LAYERS)

    if len(sizes) == 1:
        return at(sizes[0])
    low, high = sizes[0], sizes[-1]  # a line through the smallest and the largest stack measured
    return at(low) + (at(high) - at(low)) * (stack - low) / (high - low)


def search_seconds(runs: dict[int, dict], stack: int, layer: int) -> float:
    """Seconds per searched example of ``layer`` in a stack of ``stack`` networks (the nearest measured size below)."""
    size = max([s for s in runs if s <= stack] or [min(runs)])
    return runs[size]["seconds"][f"search, layer {layer}"] / runs[size]["searched"][layer]


def chapter_plan(profile: Profile) -> list[dict[str, object]]:
    """Every stack the chapter trains, cold: what it is, its networks, its settings and its training images."""
    first = chapter.Choices(recipe=profile.adversarial_recipes[0], first_recipe=profile.adversarial_recipes[0],
                            dropout=chapter.DROPOUT_TRIED[0], epsilon=chapter.EPSILONS_TRIED[0],
                            reading="fixed at 0.05 RMS")
    held_out = len(chapter._held_out_split(profile)[0])
    full = len(training_split("train", profile))
    base = first.recipe.applied(profile.adversarial_training)
    plan: list[dict[str, object]] = []
    for recipe in profile.adversarial_recipes:
        plan.append({"what": f"tuning: {recipe.describe()}", "networks": 1, "settings": recipe.applied(base),
                     "images": held_out})
    for p_in, p_hidden in chapter.DROPOUT_TRIED:
        plan.append({"what": f"tuning: dropout {p_in}, {p_hidden}", "networks": 1,
                     "settings": replace(base, dropout_input=p_in, dropout_hidden=p_hidden), "images": held_out})
    for epsilon in chapter.EPSILONS_TRIED:
        plan.append({"what": f"control tuning: ε {epsilon}", "networks": 1, "settings": replace(base, fgsm_epsilon=epsilon),
                     "images": held_out})
    everywhere = replace(base, pool_layers=chapter.VARIANTS["pools at every layer"])
    for reading, read in chapter.POOL_READINGS.items():
        plan.append({"what": f"pool tuning: {reading}", "networks": 1, "settings": read(everywhere), "images": held_out})
    for variant in chapter.VARIANTS:
        plan.append({"what": variant, "networks": len(chapter.variant_seeds(variant, profile)),
                     "settings": chapter.variant_settings(variant, profile, first), "images": full})
    return plan


def stack_seconds(runs: dict[int, dict], settings: AdversarialTrainingSettings, networks: int, images: int) -> float:
    """A stack's estimated training time from the measured rates."""
    steps_per_epoch = math.ceil(images / settings.batch_size)
    layers = settings.pool_layers
    pooled_epochs = settings.epochs - settings.pool_start if layers else 0
    plain_steps = (settings.epochs - pooled_epochs) * steps_per_epoch
    pooled_steps = pooled_epochs * steps_per_epoch
    seconds = plain_steps * step_seconds(runs, networks, 0, fgsm=settings.fgsm_epsilon > 0)
    seconds += pooled_steps * step_seconds(runs, networks, len(layers))
    if layers:
        refreshes = math.ceil(pooled_steps / settings.refresh_every)
        examples = networks * (settings.pool_size + (refreshes - 1) * max(1, round(settings.refresh_share * settings.pool_size)))
        seconds += sum(examples * search_seconds(runs, networks, k) for k in layers)
    return seconds


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--networks", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--warm-epochs", type=int, default=1, help="epochs without pools first")
    parser.add_argument("--search", default=None, help="C,I: c steps and L-BFGS iterations of the pools' search")
    parser.add_argument("--pool-size", type=int, default=None, help="examples per pool (default: the profile's)")
    parser.add_argument("--stacked-search", choices=["on", "off"], default=None)
    parser.add_argument("--compare-stacked", action="store_true", help="time the searches together and one by one")
    parser.add_argument("--chapter", action="store_true", help="estimate the chapter's time from measured rates")
    parser.add_argument("--no-flops", action="store_true", help="skip the second run that counts FLOPs")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    settings = profile.adversarial_recipes[0].applied(profile.adversarial_training)
    if args.search:
        c_steps, max_iter = (int(v) for v in args.search.split(","))
        settings = replace(settings, search=replace(settings.search, c_steps=c_steps, max_iter=max_iter))
        profile = replace(profile, adversarial_training=replace(profile.adversarial_training, search=settings.search))
    if args.pool_size:
        settings = replace(settings, pool_size=args.pool_size)
        profile = replace(profile, adversarial_training=replace(profile.adversarial_training, pool_size=args.pool_size))
    dev = device()
    stacked = STACKED_SEARCH[dev.type] if args.stacked_search is None else args.stacked_search == "on"
    print(f"784-{HIDDEN[0]}-{HIDDEN[1]}-10 networks, {args.warm_epochs} epoch(s) without pools, then {args.epochs} with "
          f"pools at every layer, on {len(training_split('train', profile)):,} images ({profile.name}), on {dev} with "
          f"{torch.get_num_threads()} thread(s); the pools' search: {settings.search.describe().splitlines()[0]}, the "
          f"networks' pools searched {'together' if stacked else 'network by network'}")

    peak = matmul_peak(dev)
    main_run = measure(profile, settings, args.networks, args.epochs, args.warm_epochs, stacked,
                       count_flops=not args.no_flops, compare=args.compare_stacked)
    seconds, calls, flops = main_run["seconds"], main_run["calls"], main_run["flops"]
    total = sum(seconds.values())
    rows = {}
    for phase, s in seconds.items():
        f = flops.get(phase.replace(", no pools", ""), math.nan) if flops and "no pools" not in phase else math.nan
        rows[phase] = {"seconds": s, "share (%)": 100 * s / total, "calls": calls[phase], "GFLOP": f / 1e9,
                       "GFLOP/s": f / s / 1e9, "of peak (%)": 100 * f / s / peak}
    print(f"\nmatrix-product peak on {dev}: {peak / 1e9:.1f} GFLOP/s (float32, 2048 x 2048)")
    print(f"{'phase':26s} {'seconds':>8s} {'share %':>8s} {'calls':>6s} {'GFLOP':>8s} {'GFLOP/s':>8s} {'of peak %':>9s}")
    for phase, row in rows.items():
        print(f"{phase:26s} {row['seconds']:8.2f} {row['share (%)']:8.1f} {row['calls']:6d} {row['GFLOP']:8.2f} "
              f"{row['GFLOP/s']:8.2f} {row['of peak (%)']:9.2f}")
    if args.compare_stacked:
        print(f"searches: one network at a time {main_run['search_seconds_one_by_one']:.1f} s, together "
              f"{main_run['search_seconds_together']:.1f} s, speed-up {main_run['search_speedup_together']:.2f}x; "
              f"largest relative change of a refresh's median distortion {main_run['largest_median_distortion_change']:.1e}")
    out: dict[str, object] = {"device": str(dev), "threads": torch.get_num_threads(), "profile": profile.name,
                              "search": settings.search.describe().splitlines()[0], "peak_gflops": peak / 1e9,
                              "phases": rows, **{k: v for k, v in main_run.items() if k not in ("flops",)}}
    if args.chapter:
        runs = {args.networks: main_run}
        if args.networks != 1:
            runs[1] = measure(profile, settings, 1, args.epochs, max(1, args.warm_epochs), stacked)
        attacked = attacked_images("test", profile).subset(slice(0, profile.adversarial_distortion_examples))
        model = seeded_networks(HIDDEN, [0])[0]
        model.load_state_dict(chapter_model_state(profile, settings))
        start = time.perf_counter()
        min_distortion_attack(model, attacked.images, attacked.targets, labels=attacked.labels, settings=profile.search,
                              progress=False)
        attack = time.perf_counter() - start
        plan = chapter_plan(profile)
        estimates = {str(row["what"]): stack_seconds(runs, row["settings"], row["networks"], row["images"])  # type: ignore[arg-type]
                     for row in plan}
        attacks = sum(int(row["networks"]) for row in plan if row["images"] == len(training_split("train", profile)))
        estimates["the book's search on each variant's networks"] = attacks * attack
        print(f"\nthe chapter, cold, estimated from these rates: {sum(estimates.values()) / 60:.1f} min")
        for what, s in sorted(estimates.items(), key=lambda item: -item[1]):
            print(f"  {what:45s} {s / 60:6.1f} min")
        out["chapter_estimate_seconds"] = sum(estimates.values())
        out["chapter_stacks_seconds"] = estimates
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float) + "\n", encoding="utf-8")
    return out


def chapter_model_state(profile: Profile, settings: AdversarialTrainingSettings) -> dict[str, torch.Tensor]:
    """A network trained for one epoch without pools: what the chapter's search of 1,000 test images is timed on."""
    model = seeded_networks(HIDDEN, [0])[0]
    adversarial_fit_many([model], training_split("train", profile), replace(settings, epochs=1, pool_start=0, pool_layers=()),
                         weight_decay=FC_DECAY, seeds=[0], progress=False)
    return model.state_dict()


if __name__ == "__main__":
    main()
