"""The search's variants, measured in one run: each choice of one of its settings against the others.

``--setting`` names the setting (:data:`VARIANTS`): ``backtracking``, how the line search shrinks a failed step
(:data:`intriguing.lbfgs_box.BACKTRACKINGS`), ``c_update``, how c moves inside its bracket
(:data:`intriguing.attacks.C_UPDATES`), ``restart``, how a c step learns the objective where it starts
(:data:`intriguing.attacks.RESTARTS`), ``first_step``, how far a c step's first trial may go
(:data:`intriguing.attacks.FIRST_STEPS`), or ``c_start``, the first c and the factor of c's first move
(:data:`C_STARTS`, the settings ``c_init`` and ``first_c_factor`` together). For each network and each search (the
book's, and the adversarial-training pools', by default at the profile's settings; ``--pool-search C,I`` sets C c
steps of I iterations, e.g. the effort the chapter chose), every choice attacks the same test images towards the
same random targets, their repetitions interleaved: the best wall time of ``--repeats``, the network's calls (each
line-search trial is one) and the rows they carried, the success rate and the mean distortion of the successes; and,
from one more untimed run under torch's profiler, the search's tensor operations (each a kernel launch on a GPU) and
host reads (scalar reads and ``nonzero``, each a synchronisation on a GPU): on a GPU, for MNIST-sized batches, the
time follows those.

Usage: python benchmarks/search_variants.py [--setting backtracking|c_update|restart|first_step|c_start]
                                           [--profile smoke|full] [--examples 1000]
                                           [--networks N100-100-10,N200-200-10] [--pool-search C,I] [--repeats 3]
                                           [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from intriguing.artifacts import trained_network
from intriguing.attacks import C_UPDATES, FIRST_STEPS, RESTARTS, min_distortion_attack, random_targets
from intriguing.data import load_mnist
from intriguing.lbfgs_box import BACKTRACKINGS
from intriguing.profiles import get_profile

C_STARTS = ({"c_init": 2.0, "first_c_factor": 3.0}, {"c_init": 1.0, "first_c_factor": 3.0},
            {"c_init": 1.0, "first_c_factor": 10.0}, {"c_init": 3.0, "first_c_factor": 3.0})
"""The starts of the c search compared: the default, c from 1 moved first by 3, the search before either field
changed (from 1, every move by 10), and c from 3."""
VARIANTS: dict[str, tuple[Any, ...]] = {
    "backtracking": BACKTRACKINGS, "c_update": C_UPDATES, "restart": RESTARTS, "first_step": FIRST_STEPS,
    "c_start": C_STARTS}
"""The settings compared, each with its choices (the default first); a choice that is a dict sets several fields."""


def _changed(base: Any, setting: str, choice: Any) -> Any:
    """``base`` (a :class:`~intriguing.attacks.SearchSettings`) with ``setting`` at ``choice``."""
    return replace(base, **(choice if isinstance(choice, dict) else {setting: choice}))


def _label(choice: Any) -> str:
    """A choice as the table shows it: a dict as its values joined by commas."""
    return ",".join(f"{v:g}" for v in choice.values()) if isinstance(choice, dict) else str(choice)
HOST_READS = ("aten::_local_scalar_dense", "aten::nonzero")
"""The operations that read a device's result on the host: ``.item()``/``bool()``/``int()`` and ``nonzero``."""


def measure(profile_name: str | None, examples: int, networks: list[str], repeats: int,
            pool_effort: tuple[int, int] | None = None, setting: str = "backtracking") -> list[dict[str, Any]]:
    """One row per network, search and choice of ``setting`` (a key of :data:`VARIANTS`): ``seconds`` (best of
    ``repeats``), ``calls``, ``rows``, ``success`` (fraction), ``distortion`` (mean RMS over the successes),
    ``operations`` and ``host reads``."""
    if setting not in VARIANTS:
        raise ValueError(f"unknown setting {setting!r}; choose one of {sorted(VARIANTS)}")
    chosen = get_profile(profile_name)
    test = load_mnist("test")
    images, labels = test.images[:examples], test.labels[:examples]
    targets = random_targets(labels, seed=0)
    pools = chosen.adversarial_training.search
    if pool_effort is not None:
        pools = replace(pools, c_steps=pool_effort[0], max_iter=pool_effort[1])
    searches = {"book": chosen.search, "pools": pools}
    rows = []
    for name in networks:
        model = trained_network(name, chosen).model
        counted = [0, 0]

        def count(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
            counted[0] += 1
            counted[1] += len(args[0])

        hook = model.register_forward_pre_hook(count)
        try:
            for search, base in searches.items():
                found: dict[str, dict[str, Any]] = {}
                for _ in range(repeats):
                    for choice in VARIANTS[setting]:
                        settings = _changed(base, setting, choice)
                        counted[:] = [0, 0]
                        start = time.perf_counter()
                        result = min_distortion_attack(model, images, targets, labels=labels, settings=settings,
                                                       progress=False)
                        seconds = time.perf_counter() - start
                        label = _label(choice)
                        row = found.setdefault(label, {"network": name, "search": search, setting: label,
                                                       "seconds": seconds})
                        row.update(seconds=min(row["seconds"], seconds), calls=counted[0], rows=counted[1],
                                   success=result.success.double().mean().item(),
                                   distortion=result.distortion[result.success].mean().item())
                for choice in VARIANTS[setting]:
                    row = found[_label(choice)]
                    settings = _changed(base, setting, choice)
                    with profile(activities=[ProfilerActivity.CPU]) as prof:
                        min_distortion_attack(model, images, targets, labels=labels, settings=settings, progress=False)
                    ops = {event.key: event.count for event in prof.key_averages()}
                    row.update(operations=sum(n for key, n in ops.items() if key.startswith("aten::")),
                               host_reads=sum(ops.get(key, 0) for key in HOST_READS))
                rows += found.values()
        finally:
            hook.remove()
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", default="backtracking", choices=sorted(VARIANTS), help="the setting compared")
    parser.add_argument("--profile", default=None, help="networks of this profile (default: $INTRIGUING_PROFILE or full)")
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--networks", default="N100-100-10,N200-200-10")
    parser.add_argument("--pool-search", default=None, help="C,I: the pools' c steps and L-BFGS iterations")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    effort = tuple(int(part) for part in args.pool_search.split(",")) if args.pool_search else None
    if effort is not None and len(effort) != 2:
        parser.error(f"--pool-search takes C,I (two integers), got {args.pool_search!r}")
    rows = measure(args.profile, args.examples, args.networks.split(","), args.repeats,
                   (effort[0], effort[1]) if effort else None, args.setting)
    print(f"{args.examples} test images, random targets, {torch.get_num_threads()} threads; best of {args.repeats}")
    print(f"{'network':12s} {'search':6s} {args.setting:13s} {'seconds':>8s} {'calls':>6s} {'rows':>7s} "
          f"{'success':>8s} {'distortion':>10s} {'÷ first':>10s} {'operations':>10s} {'host reads':>10s}")
    first = {}
    for row in rows:
        key = (row["network"], row["search"])
        first.setdefault(key, row["seconds"])
        print(f"{row['network']:12s} {row['search']:6s} {row[args.setting]:13s} {row['seconds']:8.3f} {row['calls']:6d} "
              f"{row['rows']:7d} {row['success']:8.4f} {row['distortion']:10.5f} {row['seconds'] / first[key]:10.2f} "
              f"{row['operations']:10d} {row['host_reads']:10d}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
