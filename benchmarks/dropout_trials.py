"""Dropout trained as it usually is, with max-norm and the rates of Srivastava et al., against the chapter's choice.

The adversarial-training chapter chooses its dropout network's rates among ``DROPOUT_TRIED`` and its epochs (the
recipe's, or ``DROPOUT_LONGER`` times them) on held-out images. Dropout networks are also usually trained with every
unit's incoming weights capped in norm (max-norm), and Srivastava et al. (2014) drop 0.2 of the inputs and 0.5 of
the hidden units. This script trains, on the first seed and the chapter's training images less its held-out share,
each trial of :data:`TRIALS` (a change to the chapter's choice, which is the first, read from the chapter's cache)
and prints their held-out errors; then, unless the chapter's choice has the lowest, it trains the trial with the
lowest with every seed of the chapter's dropout variant on all the training images, and sets its test errors beside
the chapter's dropout and weight-decay networks, seed by seed, with paired t-tests. Every network is cached as the
chapter's are, keyed by its settings.

Usage: python benchmarks/dropout_trials.py [--profile smoke|full] [--csv OUT]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pandas as pd

from intriguing.adversarial_training import AdversarialTrainingSettings
from intriguing.artifacts import training_split
from intriguing.chapters import adversarial_training as chapter
from intriguing.data import load_mnist
from intriguing.evaluate import error_rate
from intriguing.profiles import Profile, get_profile
from intriguing.spread import paired_ordering

MAX_NORM = 4.0
"""The cap on each unit's incoming weights' L2 norm tried, the upper end of the range Srivastava et al. (2014)
report using (3 to 4)."""
TRIALS: dict[str, Callable[[AdversarialTrainingSettings], AdversarialTrainingSettings]] = {
    "chapter's dropout": lambda s: s,
    "max-norm": lambda s: replace(s, max_norm=MAX_NORM),
    "input 0.2, hidden 0.5": lambda s: replace(s, dropout_input=0.2, dropout_hidden=0.5),
    "input 0.2, hidden 0.5, max-norm": lambda s: replace(s, dropout_input=0.2, dropout_hidden=0.5, max_norm=MAX_NORM),
}
"""Each trial as a change to the chapter's dropout settings."""


def chapter_choices(profile: Profile) -> chapter.Choices:
    """What the chapter's held-out images chose, made as the chapter makes it (from its cache when it has run)."""
    tuned = chapter.tuning(profile)
    efforts = chapter.effort_tuning(profile, tuned)
    effort = str(efforts.index.get_level_values("effort")[efforts["chosen"]][0])
    return chapter.choose(profile, tuned, chapter.control_tuning(profile, tuned),
                          chapter.pool_tuning(profile, tuned, effort), efforts)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    choices = chapter_choices(profile)
    dropout = chapter.variant_settings("dropout", profile, choices)
    trials = {name: change(dropout) for name, change in TRIALS.items()}
    held_out = pd.Series({name: chapter.held_out_error("tuning", settings, profile) for name, settings in trials.items()},
                         name="held-out error (%)")
    print(held_out.round(3).to_string())
    best = str(held_out.idxmin())
    print(f"lowest held-out error: {best}\n{trials[best].describe()}")

    train, test = training_split("train", profile), load_mnist("test")
    seeds = chapter.variant_seeds("dropout", profile)
    networks = {"weight decay": chapter.variant_settings("weight decay", profile, choices), "dropout": dropout}
    if best != next(iter(TRIALS)):
        networks[f"dropout, {best}"] = trials[best]
    rows = []
    for variant, settings in networks.items():
        for seed, net in zip(seeds, chapter.train_variants(variant, settings, train, profile, seeds, {})):
            rows.append({"variant": variant, "seed": seed, "test error": 100 * error_rate(net.model, test),
                         "training error": 100 * error_rate(net.model, train), "seconds": net.seconds})
    found = pd.DataFrame(rows).set_index(["variant", "seed"])
    with pd.option_context("display.width", 200):
        print(found.round(3).to_string())
        print(found.groupby(level="variant", sort=False).agg(["mean", "std"]).round(3).to_string())
        for lower, higher in [("dropout", "weight decay")] + [(f"dropout, {best}", other) for other in networks
                                                               if len(networks) > 2 and other != f"dropout, {best}"]:
            print(lower, "<", higher, paired_ordering(found.loc[lower, "test error"], found.loc[higher, "test error"]))
    if args.csv:
        found.to_csv(args.csv)
    return {"held_out": held_out, "best": best, "found": found}


if __name__ == "__main__":
    main()
