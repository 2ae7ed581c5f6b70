"""The pools' search effort, chosen on held-out images: what a cheaper search does to the pooled networks.

Runs :func:`intriguing.chapters.adversarial_training.effort_tuning` for the profile: the pools at every layer
under the first reading and under "fixed at 0.05 RMS", each with every effort of ``EFFORTS_TRIED`` (c steps ×
L-BFGS iterations per c), one seed, trained on the profile's training images less the held-out share. It prints
each network's held-out error with its standard error, the pools' median distortion and success, and its training
time, and the effort the chapter would choose (``cheapest_effort``: the cheapest whose held-out error lies within
``EFFORT_SES`` standard errors of the profile's effort's under both readings). The networks are cached as the
chapter's held-out networks are, so the chapter reuses them.

Usage: python benchmarks/pool_search_effort.py [--profile smoke|full] [--csv OUT]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from intriguing.chapters import adversarial_training as chapter
from intriguing.profiles import get_profile


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    table = chapter.effort_tuning(profile)
    chosen = table.index.get_level_values("effort")[table["chosen"]][0]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(4).to_string())
    print(f"cheapest effort within {chapter.EFFORT_SES:g} standard errors of the profile's under every reading: {chosen}")
    if args.csv:
        table.to_csv(args.csv)
    return table


if __name__ == "__main__":
    main()
