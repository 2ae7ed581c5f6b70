"""Table 4 with M1, M1' and M2 stopped by the window test against trained to the cap, over the replicates.

The full profile stops each L-BFGS training at the window test (``converge_below``); earlier builds trained to
the iteration cap, and one replicate then gave a different "Distorted for M2, amplified" → M1 cell. This
script trains the three networks of every replicate to the cap (``trained_network(..., to_cap=True)``, cached
as the book caches networks, so a rerun or the book reuses them), makes their adversarial test sets with the
book's search, and prints, for every Table 4 cell of the three networks' sets, the replicates' mean ± sd under
both trainings, the paired difference (cap − window, per replicate) and the paper's value; then the networks'
test errors and iterations, and the sets' mean distortion.

Usage: python benchmarks/cross_training_cap.py [--profile smoke|full] [--csv OUT]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from intriguing import paper, spread
from intriguing.artifacts import replicates, trained_network
from intriguing.chapters import cross_training_set as chapter
from intriguing.data import load_mnist
from intriguing.evaluate import error_rate
from intriguing.profiles import get_profile
from intriguing.transfer import DISTORTION

TRAININGS = {"window test": False, "cap": True}
"""How the networks were stopped -> ``to_cap``."""


def networks(profile_name: str | None) -> pd.DataFrame:
    """Each network of every replicate under both trainings: its L-BFGS iterations and test error (%)."""
    profile = get_profile(profile_name)
    test = load_mnist("test")
    rows = []
    for r in replicates(chapter.NETWORKS[0], profile):
        for stop, to_cap in TRAININGS.items():
            for name in chapter.NETWORKS:
                net = trained_network(name, profile, replicate=r, to_cap=to_cap)
                rows.append({"network": name, spread.REPLICATE: r, "stopped by": stop,
                             "iterations": sum(log.iterations for log in net.stages.values()),
                             "test error (%)": 100 * error_rate(net.model, test)})
    return pd.DataFrame(rows).set_index(["network", spread.REPLICATE, "stopped by"])


def cells(profile_name: str | None) -> pd.DataFrame:
    """Table 4's cells of the three networks' sets (plain and amplified) under both trainings.

    Returns:
        One row per (set, network): ``window test`` and ``cap`` (mean ± sd over the replicates, %), their
        means, the paired difference's mean and sd (pp), and the paper's value.
    """
    profile = get_profile(profile_name)
    samples = {stop: chapter.table4_samples(profile, to_cap=to_cap) for stop, to_cap in TRAININGS.items()}
    rows = []
    for row in list(chapter.PLAIN.values()) + list(chapter.AMPLIFIED.values()):
        for column in chapter.NETWORKS + [DISTORTION]:
            per = {stop: table.xs(row, level="set")[column] for stop, table in samples.items()}
            difference = per["cap"] - per["window test"]
            rows.append({"set": row, "column": column, "window test": per["window test"].mean(),
                         "window sd": per["window test"].std(), "cap": per["cap"].mean(), "cap sd": per["cap"].std(),
                         "cap - window": difference.mean(), "difference sd": difference.std(),
                         "paper": paper.TABLE4.loc[row, column]})
    return pd.DataFrame(rows).set_index(["set", "column"])


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args(argv)
    trained = networks(args.profile)
    table = cells(args.profile)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 200):
        print(trained.unstack("stopped by").round(3).to_string())
        print(table.round(2).to_string())
    if args.csv:
        table.to_csv(args.csv)
    return table


if __name__ == "__main__":
    main()
