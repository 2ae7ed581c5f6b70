"""The pools' search effort, chosen on held-out images: what a cheaper search does to the pooled networks.

Runs :func:`intriguing.chapters.adversarial_training.effort_tuning` for the profile: the pools at every layer
under the first reading and under "fixed at 0.05 RMS", each with every effort of ``EFFORTS_TRIED`` (c steps ×
L-BFGS iterations per c), one seed, trained on the profile's training images less the held-out share. It prints
each network's held-out error with its standard error, the pools' median distortion and success, and its training
time, and marks the cheapest effort whose held-out error lies within ``--ses`` standard errors of the profile's
effort under both readings. The networks are cached as the chapter's held-out networks are (the profile's effort
shares its cache entries with the chapter's reading table).

Usage: python benchmarks/pool_search_effort.py [--profile smoke|full] [--ses 2] [--csv OUT]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from intriguing.chapters import adversarial_training as chapter
from intriguing.profiles import get_profile


def cheapest_within(table: pd.DataFrame, ses: float) -> str:
    """The cheapest effort (least total minutes over the readings) whose held-out error under every reading is at
    most the first effort's plus ``ses`` standard errors of the two errors' difference."""
    efforts = list(dict.fromkeys(table.index.get_level_values("effort")))
    reference = efforts[0]
    fits = []
    for effort in efforts:
        ok = True
        for reading in dict.fromkeys(table.index.get_level_values("reading")):
            a, b = table.loc[(reading, effort)], table.loc[(reading, reference)]
            ok &= a["held-out error (%)"] <= b["held-out error (%)"] + ses * (a["se (pp)"] ** 2 + b["se (pp)"] ** 2) ** 0.5
        if ok:
            fits.append(effort)
    minutes = table.groupby(level="effort")["minutes"].sum()
    return min(fits, key=lambda effort: minutes[effort])


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--ses", type=float, default=2.0)
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    table = chapter.effort_tuning(profile)
    chosen = cheapest_within(table, args.ses)
    table["chosen"] = table.index.get_level_values("effort") == chosen
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(4).to_string())
    print(f"cheapest effort within {args.ses:g} standard errors of the profile's under every reading: {chosen}")
    if args.csv:
        table.to_csv(args.csv)
    return table


if __name__ == "__main__":
    main()
