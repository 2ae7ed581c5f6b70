"""The adversarial-training chapter (§4.2): a 100-100-10 sigmoid network trained with pools of
adversarial examples at its layers, against weight decay alone and dropout, over several seeds."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from .. import cache, paper, plots
from ..adversarial_training import (
    POOL_VERDICTS,
    RECORD_FORMAT,
    AdversarialTrainingSettings,
    Recipe,
    adversarial_fit_many,
    pool_verdicts,
    seeded_networks,
)
from ..artifacts import TargetedImages, attacked_images, replicates, trained_network, training_split
from ..attacks import SearchSettings, min_distortion_attack
from ..data import Split, load_mnist
from ..evaluate import error_rate
from ..models import FC_DECAY, SigmoidMLP
from ..paper import Tolerance
from ..profiles import Profile, get_profile
from ..spread import ORDERING_VERDICTS, paired_ordering

__all__ = ["BEST_READING", "CLAIMS", "CONTROL", "DROPOUT_TRIED", "EFFORT_READINGS", "EFFORTS_TRIED", "EPSILONS_TRIED",
           "DROPOUT_LONGER", "FIRST_FAMILY", "FIRST_RECIPE",
           "LAYER_NAMES", "LEVEL", "ORDERINGS", "POOL_READINGS", "SINGLE_LAYER_POOLS", "VARIANTS", "Choices",
           "cheapest_effort", "check_orderings", "choose", "compare_paper", "control_tuning", "decide_claims", "effort_tuning",
           "error_curves", "full_batch_verdict", "held_out_error", "with_effort",
           "lbfgs_reference", "orderings", "pool_contents", "pool_figure", "pool_record", "pool_search_cost",
           "pool_summary", "pool_tuning", "pools_verdict", "results", "summary", "train_variants", "tuning", "variant_seeds",
           "variant_settings"]

HIDDEN = (100, 100)
FIRST_RECIPE = "weight decay, first recipe"
"""Weight decay alone with the chapter's first recipe (:func:`choose`), beside the recipe chosen now."""
BEST_READING = "pools, best reading"
"""The pools under the reading of §4.2 that the held-out images chose (:func:`pool_tuning`)."""
CONTROL = "fast gradient sign"
"""The positive control: adversarial training that the literature reports helping (Goodfellow, Shlens &
Szegedy 2015, §6), with the weight-decay variant's network, recipe and seeds."""
VARIANTS = {
    "weight decay": (),
    FIRST_RECIPE: (),
    "dropout": (),
    "pool at the input": (0,),
    "pool at hidden layer 1": (1,),
    "pool at hidden layer 2": (2,),
    "pools at every layer": (0, 1, 2),
    BEST_READING: (0, 1, 2),
    CONTROL: (),
}
"""Variant -> its pooled layers (0: the input) before :data:`POOL_READINGS` change them. Every variant keeps
the FC networks' weight decay and trains with the recipe the held-out images chose (:func:`choose`),
but :data:`FIRST_RECIPE`; "dropout" adds the chosen dropout rates and epochs; the pools follow the first reading
of :data:`POOL_READINGS` but :data:`BEST_READING`, which follows the chosen one; :data:`CONTROL` trains
on fast-gradient-sign examples at the chosen ε."""
SINGLE_LAYER_POOLS = ("pool at the input", "pool at hidden layer 1", "pool at hidden layer 2")
"""The variants trained with ``profile.adversarial_layer_seeds`` seeds; the others with ``adversarial_seeds``."""
FIRST_FAMILY = ("adam", "halving")
"""The chapter's first recipe family: Adam, halved at 50 % and 75 %; its first recipe is the best of the
profile's recipes of this family on the held-out images."""
EPSILONS_TRIED = (0.05, 0.1, 0.2)
"""The control's ε tried on the held-out images (pixels in [0, 1])."""
DROPOUT_TRIED = [(0.0, 0.2), (0.0, 0.5), (0.2, 0.5)]
"""(input, hidden) dropout rates tried on a held-out part of the training set, with the chosen recipe."""
DROPOUT_LONGER = 4
"""The best dropout rates are tried once more, trained this many times the chosen recipe's epochs (its schedule
stretched to them): dropout networks are usually trained far longer than networks without it."""
POOL_READINGS: dict[str, Callable[[AdversarialTrainingSettings], AdversarialTrainingSettings]] = {
    "first reading": lambda s: s,
    "runner-up targets": lambda s: replace(s, pool_target="runner-up"),
    "capped at 0.1 RMS": lambda s: replace(s, pool_scaling="cap", pool_distortion=0.1),
    "fixed at 0.05 RMS": lambda s: replace(s, pool_scaling="fixed", pool_distortion=0.05),
    "mix 0.2": lambda s: replace(s, mix=0.2),
    "hidden layers only": lambda s: replace(s, pool_layers=(1, 2)),
    "from half-way": lambda s: replace(s, pool_start=s.epochs // 2),
}
"""Readings of what §4.2 leaves open, each a change to the pools at every layer: the first (random targets,
examples as found, 0.5 pooled per clean example, every layer, from the profile's start epoch) and one
change each. Distortions are RMS in each layer's units (pixels at the input, sigmoid outputs above)."""
EFFORTS_TRIED = {"4 c steps x 20 iterations": (4, 20), "2 c steps x 10 iterations": (2, 10),
                 "1 c step x 10 iterations": (1, 10)}
"""The pools' search efforts (c steps, L-BFGS iterations per c) :func:`effort_tuning` tries; the first is the
profile's. One c step keeps the search at c = 1: for the reading "fixed at 0.05 RMS", which keeps only each
example's direction, that asks whether the direction of an early-stopped search serves."""
EFFORT_READINGS = ("first reading", "fixed at 0.05 RMS")
"""The readings of :data:`POOL_READINGS` under which each effort is tried."""
VALIDATION = 10_000  # training images held out for the tuning (a 1/6 share of a subset)
ORDERINGS = [
    ("pools at every layer", "dropout"),
    ("dropout", "weight decay"),
    ("pools at every layer", "weight decay"),
    (BEST_READING, "weight decay"),
    (BEST_READING, "dropout"),
    ("pool at hidden layer 2", "pool at the input"),
    ("pool at hidden layer 1", "pool at the input"),
    (CONTROL, "weight decay"),
    ("weight decay", FIRST_RECIPE),
]
"""The paper's orderings, each as (should be lower, should be higher) in test error, the control's, and the
chosen recipe's against the first."""
CLAIM_ORDERINGS = {
    "adversarial-training-improves": [("pools at every layer", "weight decay"), ("pools at every layer", "dropout"),
                                      (BEST_READING, "weight decay"), (BEST_READING, "dropout")],
    "dropout-beats-weight-decay": [("dropout", "weight decay")],
    "higher-layers-more-useful": [("pool at hidden layer 2", "pool at the input"),
                                  ("pool at hidden layer 1", "pool at the input")],
}
"""Each claim of :data:`CLAIMS` and the orderings that decide it."""
CLAIMS = tuple(CLAIM_ORDERINGS)
"""The claims of :data:`intriguing.paper.CLAIMS` this chapter decides."""
LEVEL = 0.05
"""The level of the paired t-tests that decide the orderings."""


@dataclass
class TrainedVariant:
    """One network of a variant: the model, its test error (%) after each epoch, its training time (of
    the networks trained together with it), its pools' refreshes
    (:attr:`intriguing.adversarial_training.TrainingCurve.refresh_log`), the input pool's examples kept
    at the end (:attr:`~intriguing.adversarial_training.TrainingCurve.input_pool`), and its cache key
    (what results computed on it are keyed by)."""

    model: SigmoidMLP
    test_error: list[float]
    seconds: float
    refresh_log: list[dict[str, float]]
    input_pool: dict[str, torch.Tensor]
    key: dict[str, object]


@dataclass(frozen=True)
class Choices:
    """What the held-out images chose: the recipe, the first recipe, the dropout rates (input, hidden),
    the control's ε, the pools' reading (a key of :data:`POOL_READINGS`), the pools' search effort (a key
    of :data:`EFFORTS_TRIED`) and the dropout network's epochs (None: the recipe's)."""

    recipe: Recipe
    first_recipe: Recipe
    dropout: tuple[float, float]
    epsilon: float
    reading: str
    effort: str = next(iter(EFFORTS_TRIED))
    dropout_epochs: int | None = None


def _file_name(name: str) -> str:
    """A variant's name as its cache files are named (before the cache's own slug)."""
    return name.replace(" ", "_").replace(",", "")


def train_variants(variant: str, settings: AdversarialTrainingSettings, train: Split, profile: Profile,
                   seeds: list[int], selection: dict[str, object]) -> list[TrainedVariant]:
    """The networks of one variant (a name for the cache's files), one per seed, trained with ``settings``
    on ``train``, loaded from the cache; those missing are trained together
    (:func:`intriguing.adversarial_training.adversarial_fit_many`) and stored one by one. ``selection`` joins
    their cache key (e.g. the held-out share)."""
    keys = {seed: {"format": RECORD_FORMAT, "hidden": HIDDEN, "weight_decay": FC_DECAY, "settings": settings.key(),
                   "seed": seed, "train_subset": profile.train_subset, **selection} for seed in seeds}
    names = {seed: _file_name(f"{variant}-seed{seed}") for seed in seeds}
    records = {seed: cache.lookup("adversarial-training", names[seed], keys[seed]) for seed in seeds}
    missing = [seed for seed in seeds if records[seed] is cache.MISSING]
    if missing:
        cache.forbid_compute(f"adversarial-training {names[missing[0]]}")
        cache.check_writable("adversarial-training")
        models = seeded_networks(HIDDEN, missing)
        curves = adversarial_fit_many(models, train, settings, weight_decay=FC_DECAY, seeds=missing,
                                      evaluation=load_mnist("test"))
        for seed, model, curve in zip(missing, models, curves):
            records[seed] = {"state_dict": model.state_dict(), "curve": asdict(curve)}
            cache.store("adversarial-training", names[seed], keys[seed], records[seed])
    trained = []
    for seed in seeds:
        model = SigmoidMLP(HIDDEN)
        model.load_state_dict(records[seed]["state_dict"])
        curve = records[seed]["curve"]
        trained.append(TrainedVariant(model.eval(), curve["test_error"], curve["seconds"], curve["refresh_log"],
                                      curve["input_pool"], keys[seed]))
    return trained


def _search(net: TrainedVariant, name: str, attacked: TargetedImages, settings: SearchSettings) -> dict[str, Any]:
    """D(x, l) on ``net`` for ``attacked`` (towards their targets) with ``settings``, cached (kind ``attacks``, keyed
    by the network's key) with its wall time in ``seconds``."""
    def compute() -> dict[str, Any]:
        start = time.perf_counter()
        result = min_distortion_attack(net.model, attacked.images, attacked.targets, labels=attacked.labels,
                                       settings=settings, progress=False)
        return {**asdict(result), "seconds": time.perf_counter() - start}

    key = {"network": net.key, "search": settings.key(), "split": "test", "examples": len(attacked),
           "target_seed": attacked.target_seed}
    return cache.cached("attacks", name, key, compute)


def _held_out_split(profile: Profile) -> tuple[Split, Split]:
    """The profile's training images without, and then only, the share held out for choosing settings."""
    train = training_split("train", profile)
    held = min(VALIDATION, len(train) // 6)
    return train.subset(slice(0, len(train) - held)), train.subset(slice(len(train) - held, len(train)))


def held_out_error(variant: str, settings: AdversarialTrainingSettings, profile: Profile) -> float:
    """The error (%) on the held-out images of a network trained with ``settings`` and the first seed on
    the rest of the profile's training images."""
    fit, check = _held_out_split(profile)
    (net,) = train_variants(variant, settings, fit, profile, [0], {"held_out": len(check)})
    return 100 * error_rate(net.model, check)


def tuning(profile: Profile | str | None = None) -> pd.DataFrame:
    """Every recipe of the profile without dropout, then the best of them with every dropout setting of
    :data:`DROPOUT_TRIED`, then the best of those trained :data:`DROPOUT_LONGER` times longer: each trained with
    the first seed on the profile's training images minus a held-out share, and its error (%) on the held-out
    images.

    Returns:
        One row per setting: ``recipe`` (:meth:`intriguing.adversarial_training.Recipe.describe`),
        ``input dropout``, ``hidden dropout``, ``epochs``, ``held-out error (%)``.
    """
    profile = get_profile(profile)
    errors = {recipe: held_out_error("tuning", recipe.applied(profile.adversarial_training), profile)
              for recipe in profile.adversarial_recipes}
    rows: list[dict[str, object]] = [{"recipe": recipe.describe(), "input dropout": 0.0, "hidden dropout": 0.0,
                                      "epochs": recipe.epochs, "held-out error (%)": error}
                                     for recipe, error in errors.items()]
    best = min(errors, key=errors.__getitem__)
    held_out = {}
    for p_in, p_hidden in DROPOUT_TRIED:
        settings = replace(best.applied(profile.adversarial_training), dropout_input=p_in, dropout_hidden=p_hidden)
        held_out[p_in, p_hidden] = held_out_error("tuning", settings, profile)
        rows.append({"recipe": best.describe(), "input dropout": p_in, "hidden dropout": p_hidden,
                     "epochs": best.epochs, "held-out error (%)": held_out[p_in, p_hidden]})
    p_in, p_hidden = min(DROPOUT_TRIED, key=lambda rates: held_out[rates])
    longer = replace(best.applied(profile.adversarial_training), dropout_input=p_in, dropout_hidden=p_hidden,
                     epochs=DROPOUT_LONGER * best.epochs)
    rows.append({"recipe": best.describe(), "input dropout": p_in, "hidden dropout": p_hidden, "epochs": longer.epochs,
                 "held-out error (%)": held_out_error("tuning", longer, profile)})
    return pd.DataFrame(rows)


def _recipe(profile: Profile, described: str) -> Recipe:
    recipes = {recipe.describe(): recipe for recipe in profile.adversarial_recipes}
    if described not in recipes:
        raise ValueError(f"no recipe {described!r} in profile {profile.name!r}; it has {sorted(recipes)}")
    return recipes[described]


def _without_dropout(tuned: pd.DataFrame) -> pd.Series:
    return (tuned["input dropout"] == 0) & (tuned["hidden dropout"] == 0)


def _chosen_recipe(profile: Profile, tuned: pd.DataFrame) -> Recipe:
    """The recipe of the :func:`tuning` row without dropout that has the lowest held-out error."""
    plain = tuned[_without_dropout(tuned)]
    return _recipe(profile, plain.loc[plain["held-out error (%)"].idxmin(), "recipe"])


def _base(profile: Profile, tuned: pd.DataFrame) -> AdversarialTrainingSettings:
    """The weight-decay variant's settings: the profile's, with the recipe ``tuned`` chooses."""
    return _chosen_recipe(profile, tuned).applied(profile.adversarial_training)


def _mark_lowest(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a ``chosen`` column: True on the rows of lowest held-out error."""
    return table.assign(chosen=table["held-out error (%)"] == table["held-out error (%)"].min())


def control_tuning(profile: Profile | str | None = None, tuned: pd.DataFrame | None = None) -> pd.DataFrame:
    """The control's ε: every ε of :data:`EPSILONS_TRIED` with the weight-decay variant's settings, and the
    held-out error (%) as in :func:`tuning`; the chosen ε is the one with the lowest.

    Returns:
        One row per ε: ``epsilon``, ``held-out error (%)``, ``chosen``.
    """
    profile = get_profile(profile)
    base = _base(profile, tuning(profile) if tuned is None else tuned)
    table = pd.DataFrame([{"epsilon": epsilon, "held-out error (%)": held_out_error(
        "control tuning", replace(base, fgsm_epsilon=epsilon), profile)} for epsilon in EPSILONS_TRIED])
    return _mark_lowest(table)


def _changes(base: AdversarialTrainingSettings, read: AdversarialTrainingSettings) -> str:
    before, after = base.key(), read.key()
    changed = [f"{name} {after.get(name)}" for name in sorted(set(before) | set(after)) if before.get(name) != after.get(name)]
    return ", ".join(changed) or "none"


def pool_tuning(profile: Profile | str | None = None, tuned: pd.DataFrame | None = None,
                effort: str = next(iter(EFFORTS_TRIED))) -> pd.DataFrame:
    """The pools' reading: the pools at every layer under every reading of :data:`POOL_READINGS`, with the
    weight-decay variant's recipe and the pools' search at ``effort`` (:func:`effort_tuning` chooses it), and
    the held-out error (%) as in :func:`tuning`; the chosen reading is the one with the lowest.

    Returns:
        One row per reading (the index): ``changes`` (the settings it changes), ``held-out error (%)``,
        ``chosen``.
    """
    profile = get_profile(profile)
    pooled = with_effort(replace(_base(profile, tuning(profile) if tuned is None else tuned),
                                 pool_layers=VARIANTS["pools at every layer"]), effort)
    rows = {}
    for reading, read in POOL_READINGS.items():
        settings = read(pooled)
        rows[reading] = {"changes": _changes(pooled, settings),
                         "held-out error (%)": held_out_error("pool tuning", settings, profile)}
    return _mark_lowest(pd.DataFrame.from_dict(rows, orient="index").rename_axis("reading"))


def with_effort(settings: AdversarialTrainingSettings, effort: str) -> AdversarialTrainingSettings:
    """``settings`` with the pools' search at ``effort`` (a key of :data:`EFFORTS_TRIED`)."""
    if effort not in EFFORTS_TRIED:
        raise ValueError(f"unknown effort {effort!r}; choose one of {list(EFFORTS_TRIED)}")
    c_steps, max_iter = EFFORTS_TRIED[effort]
    return replace(settings, search=replace(settings.search, c_steps=c_steps, max_iter=max_iter))


EFFORT_SES = 2.0
"""An effort serves when its held-out error is at most the profile's effort's plus this many standard errors of
the two errors' difference, under every reading of :data:`EFFORT_READINGS`."""


def cheapest_effort(efforts: pd.DataFrame) -> str:
    """The cheapest effort of :func:`effort_tuning`'s table (least training minutes over the readings) that serves
    (:data:`EFFORT_SES`); the profile's effort, the first, always serves."""
    names = list(dict.fromkeys(efforts.index.get_level_values("effort")))
    readings = list(dict.fromkeys(efforts.index.get_level_values("reading")))

    def serves(effort: str) -> bool:
        return all(efforts.loc[(r, effort), "held-out error (%)"] <= efforts.loc[(r, names[0]), "held-out error (%)"]
                   + EFFORT_SES * math.hypot(efforts.loc[(r, effort), "se (pp)"], efforts.loc[(r, names[0]), "se (pp)"])
                   for r in readings)

    minutes = efforts.groupby(level="effort")["minutes"].sum()
    return min((effort for effort in names if serves(effort)), key=lambda effort: minutes[effort])


def effort_tuning(profile: Profile | str | None = None, tuned: pd.DataFrame | None = None) -> pd.DataFrame:
    """The pools' search effort: the pools at every layer under each reading of :data:`EFFORT_READINGS`, with the
    weight-decay variant's recipe and each effort of :data:`EFFORTS_TRIED`, trained with the first seed on the
    profile's training images less the held-out share.

    Returns:
        One row per (reading, effort): ``held-out error (%)``, its binomial standard error ``se (pp)``, the pools'
        ``median distortion`` (the mean over the training's refreshes and pooled layers of each refresh's median,
        RMS in each layer's units), ``success (%)`` (searches that reached their target) and ``minutes`` (the
        network's training time).
    """
    profile = get_profile(profile)
    pooled = replace(_base(profile, tuning(profile) if tuned is None else tuned), pool_layers=VARIANTS["pools at every layer"])
    fit, check = _held_out_split(profile)
    rows = []
    for reading in EFFORT_READINGS:
        for effort in EFFORTS_TRIED:
            settings = with_effort(POOL_READINGS[reading](pooled), effort)
            (net,) = train_variants("pool tuning", settings, fit, profile, [0], {"held_out": len(check)})
            error = error_rate(net.model, check)
            log = pd.DataFrame(net.refresh_log)
            rows.append({"reading": reading, "effort": effort, "held-out error (%)": 100 * error,
                         "se (pp)": 100 * math.sqrt(error * (1 - error) / len(check)),
                         "median distortion": log["median distortion"].mean(), "success (%)": 100 * log["success"].mean(),
                         "minutes": net.seconds / 60})
    table = pd.DataFrame(rows).set_index(["reading", "effort"])
    return table.assign(chosen=table.index.get_level_values("effort") == cheapest_effort(table))


def choose(profile: Profile | str | None, tuned: pd.DataFrame, control: pd.DataFrame, readings: pd.DataFrame,
           efforts: pd.DataFrame | None = None) -> Choices:
    """What :func:`tuning`, :func:`control_tuning`, :func:`pool_tuning` and :func:`effort_tuning` choose: the recipe
    with the lowest held-out error without dropout, the first recipe (the best of :data:`FIRST_FAMILY`), the
    dropout rates and epochs with the lowest held-out error (a table without ``epochs``: the recipe's), the
    chosen ε and reading, and the effort marked chosen (:func:`cheapest_effort`; without ``efforts``: the
    profile's).

    Raises:
        ValueError: the tuning table lacks settings with dropout or without it, or a recipe of the first
            family; or no ε or reading is chosen.
    """
    profile = get_profile(profile)
    plain = _without_dropout(tuned)
    if not plain.any() or plain.all():
        raise ValueError("the tuning table needs settings both with and without dropout")
    recipes = {described: _recipe(profile, described) for described in tuned.loc[plain, "recipe"]}
    first = tuned[plain & tuned["recipe"].map(lambda d: (recipes[d].optimizer, recipes[d].schedule) == FIRST_FAMILY)]
    if first.empty:
        raise ValueError(f"the tuning table has no recipe of the first family {FIRST_FAMILY}")
    dropout = tuned.loc[tuned.loc[~plain, "held-out error (%)"].idxmin()]
    if not control["chosen"].any() or not readings["chosen"].any():
        raise ValueError("no ε or no reading is chosen")
    return Choices(recipe=_chosen_recipe(profile, tuned),
                   first_recipe=recipes[first.loc[first["held-out error (%)"].idxmin(), "recipe"]],
                   dropout=(float(dropout["input dropout"]), float(dropout["hidden dropout"])),
                   dropout_epochs=int(dropout["epochs"]) if "epochs" in tuned.columns else None,
                   epsilon=float(control.loc[control["chosen"], "epsilon"].iloc[0]),
                   reading=str(readings.index[readings["chosen"]][0]),
                   effort=str(efforts.index.get_level_values("effort")[efforts["chosen"]][0]) if efforts is not None
                   else next(iter(EFFORTS_TRIED)))


def variant_settings(variant: str, profile: Profile | str | None, choices: Choices) -> AdversarialTrainingSettings:
    """The settings ``variant`` trains with (see :data:`VARIANTS`)."""
    profile = get_profile(profile)
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {list(VARIANTS)}")
    recipe = choices.first_recipe if variant == FIRST_RECIPE else choices.recipe
    settings = replace(recipe.applied(profile.adversarial_training), pool_layers=VARIANTS[variant])
    if variant == "dropout":
        settings = replace(settings, dropout_input=choices.dropout[0], dropout_hidden=choices.dropout[1],
                           epochs=choices.dropout_epochs or settings.epochs)
    if variant == CONTROL:
        settings = replace(settings, fgsm_epsilon=choices.epsilon)
    if variant == BEST_READING:
        settings = POOL_READINGS[choices.reading](settings)
    return with_effort(settings, choices.effort) if settings.pool_layers else settings


def variant_seeds(variant: str, profile: Profile | str | None = None) -> list[int]:
    """The seeds of ``variant``: ``profile.adversarial_layer_seeds`` for :data:`SINGLE_LAYER_POOLS`,
    ``profile.adversarial_seeds`` for the others."""
    profile = get_profile(profile)
    return list(range(profile.adversarial_layer_seeds if variant in SINGLE_LAYER_POOLS else profile.adversarial_seeds))


def results(profile: Profile | str | None, choices: Choices) -> pd.DataFrame:
    """Every variant and seed (:func:`variant_seeds`): test and training error (%), the average minimum
    distortion of its adversarial test images (random targets, the book's search), and its training time.

    Returns:
        Rows (variant, seed); columns ``test error``, ``training error``, ``distortion``,
        ``success (%)``, ``seconds``, ``curve`` (the test error after each epoch), ``refreshes``
        (each pool refresh, :attr:`intriguing.adversarial_training.TrainingCurve.refresh_log`) and
        ``input pool`` (:attr:`intriguing.adversarial_training.TrainingCurve.input_pool`).
    """
    profile = get_profile(profile)
    train, test = training_split("train", profile), load_mnist("test")
    attacked = attacked_images("test", profile).subset(slice(0, profile.adversarial_distortion_examples))
    rows = []
    for variant in VARIANTS:
        settings = variant_settings(variant, profile, choices)
        seeds = variant_seeds(variant, profile)
        for seed, net in zip(seeds, train_variants(variant, settings, train, profile, seeds, {})):
            attack = _search(net, _file_name(f"{variant}-seed{seed}-test"), attacked, profile.search)
            rows.append({"variant": variant, "seed": seed, "test error": 100 * error_rate(net.model, test),
                         "training error": 100 * error_rate(net.model, train),
                         "distortion": attack["distortion"][attack["success"]].mean().item(),
                         "success (%)": 100 * attack["success"].double().mean().item(),
                         "seconds": net.seconds, "curve": net.test_error, "refreshes": net.refresh_log,
                         "input pool": net.input_pool})
    return pd.DataFrame(rows).set_index(["variant", "seed"])


def summary(found: pd.DataFrame) -> pd.DataFrame:
    """Per variant: test error mean, sd and every seed's value, training error, distortion and seconds
    (means over seeds)."""
    grouped = found.groupby(level="variant", sort=False)
    return pd.DataFrame({
        "test error": grouped["test error"].mean(),
        "sd": grouped["test error"].std(),
        "seeds": grouped["test error"].count(),
        "every seed": grouped["test error"].agg(lambda e: ", ".join(f"{v:.2f}" for v in e)),
        "training error": grouped["training error"].mean(),
        "distortion": grouped["distortion"].mean(),
        "distortion sd": grouped["distortion"].std(),
        "seconds": grouped["seconds"].mean(),
    })


def compare_paper(table: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Our mean test errors (a :func:`summary`) beside §4.2's. With two seeds or more, the tolerance is the
    seeds' spread, :data:`intriguing.paper.SPREAD_SDS` sd of each variant; with one seed, which has no
    spread, ``profile.error_tolerance_pp``."""
    variants = list(paper.ADVERSARIAL_TRAINING.index)
    ours = table.loc[variants, ["test error"]].rename(columns={"test error": "Test error"})
    spread = table.loc[variants, ["sd"]].rename(columns={"sd": "Test error"})
    stated = Tolerance(0.0 if table.loc[variants, "seeds"].min() >= 2 else profile.error_tolerance_pp)
    return paper.compare_with_paper(ours, "§4.2 adversarial training", stated, profile=profile.name, spread=spread)


def orderings(found: pd.DataFrame) -> pd.DataFrame:
    """Each of the paper's orderings, tested seed by seed: the variants of one seed share their initial
    weights and minibatch order, so each seed pairs them (:func:`intriguing.spread.paired_ordering`,
    two-sided paired t-test at :data:`LEVEL`).

    Returns:
        Per ordering: seeds, the mean difference (lower − higher, pp), the sd of the differences, t,
        the p-value, the test in words, and the verdict (``"holds"``, ``"reversed"`` or ``"not resolved"``).
    """
    per_seed = found["test error"].unstack("variant")
    rows = {f"{lower} < {higher}": paired_ordering(per_seed[lower], per_seed[higher], LEVEL)
            for lower, higher in ORDERINGS}
    frame = pd.DataFrame.from_dict(rows, orient="index").rename_axis("ordering")
    return frame.rename(columns={"difference": "difference (pp)", "sd of differences": "sd of differences (pp)"})


def check_orderings(found: pd.DataFrame) -> None:
    """Every ordering has a verdict, and a p-value wherever two seeds or more pair up. What the verdicts
    are is the claims' business (:func:`decide_claims`), not a check's: no outcome fails the chapter."""
    assert found["verdict"].isin(ORDERING_VERDICTS).all(), found
    tested = found["seeds"] >= 2
    assert found.loc[tested, "p-value"].between(0, 1).all(), found


def pool_search_cost(profile: Profile | str | None, choices: Choices) -> pd.DataFrame:
    """The pools' cheaper search (at the chosen effort) against the chapter's, on the weight-decay network's first
    seed and the same attacked test images: mean distortion, success and seconds per 1000 examples (timed when
    each search ran, and cached with it)."""
    profile = get_profile(profile)
    settings = variant_settings("weight decay", profile, choices)
    seeds = variant_seeds("weight decay", profile)  # as results() trains them: together, the first one used here
    net = train_variants("weight decay", settings, training_split("train", profile), profile, seeds, {})[0]
    attacked = attacked_images("test", profile).subset(slice(0, profile.adversarial_distortion_examples))
    rows = {}
    pools_search = with_effort(settings, choices.effort).search
    for name, search in (("the pools' search", pools_search), ("the book's search", profile.search)):
        result = _search(net, _file_name(f"weight decay-seed{seeds[0]}-test"), attacked, search)
        rows[name] = {"settings": search.describe().replace("\n", "; "),
                      "distortion": result["distortion"][result["success"]].mean().item(),
                      "success (%)": 100 * result["success"].double().mean().item(),
                      "s / 1000 examples": 1000 * result["seconds"] / len(attacked)}
    return pd.DataFrame.from_dict(rows, orient="index")


def error_curves(found: pd.DataFrame) -> Figure:
    """Test error against epochs, the mean over seeds for each variant."""
    curves = {variant: np.mean(np.array(list(group["curve"])), axis=0)
              for variant, group in found.groupby(level="variant", sort=False)}
    return plots.curves(curves, xlabel="epoch", ylabel="test error (%)")


LAYER_NAMES = {0: "input", 1: "hidden layer 1", 2: "hidden layer 2"}


def pool_record(found: pd.DataFrame, variant: str = "pools at every layer") -> pd.DataFrame:
    """What the pools of ``variant`` held over training, from :func:`results`: per refresh and pooled
    layer, the mean over seeds of the share of searches that succeeded (%) and of the median and
    90th-percentile distortion (RMS, in the layer's units) of the examples found.

    Returns:
        Rows (layer, step), columns ``success (%)``, ``median distortion``, ``p90 distortion``, ``seeds``.
    """
    rows = [{**record, "seed": seed} for seed, log in found.loc[variant, "refreshes"].items() for record in log]
    if not rows:
        raise ValueError(f"{variant!r} recorded no pool refresh")
    frame = pd.DataFrame(rows)
    frame["layer"] = frame["layer"].map(LAYER_NAMES)
    frame["success (%)"] = 100 * frame["success"]
    grouped = frame.groupby(["layer", "step"], sort=False)
    record = grouped[["success (%)", "median distortion", "p90 distortion"]].mean()
    return record.assign(seeds=grouped["seed"].nunique())


def pool_figure(record: pd.DataFrame, profile: Profile | str | None = None) -> Figure:
    """:func:`pool_record` over training, x in epochs of the profile's training images."""
    profile = get_profile(profile)
    epoch_steps = math.ceil(len(training_split("train", profile)) / profile.adversarial_training.batch_size)
    columns = {"searches that succeeded (%)": "success (%)", "median distortion": "median distortion",
               "90th-percentile distortion": "p90 distortion"}
    panels = {label: {layer: (part.index.get_level_values("step") / epoch_steps, part[column])
                      for layer, part in record.groupby(level="layer", sort=False)}
              for label, column in columns.items()}
    return plots.line_panels(panels, xlabel="epoch")


def pool_summary(record: pd.DataFrame) -> pd.DataFrame:
    """Per pooled layer: the success share and median distortion at the first refresh and at the last."""
    rows = {}
    for layer, part in record.groupby(level="layer", sort=False):
        first, last = part.iloc[0], part.iloc[-1]
        rows[layer] = {"success, first (%)": first["success (%)"], "success, last (%)": last["success (%)"],
                       "median distortion, first": first["median distortion"],
                       "median distortion, last": last["median distortion"], "refreshes": len(part)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("pooled layer")


def lbfgs_reference(profile: Profile | str | None = None) -> pd.DataFrame:
    """The book's N100-100-10 (:mod:`intriguing.artifacts`): the same 784-100-100-10 sigmoid network with the
    same weight decay trained full-batch with L-BFGS, the level a minibatch recipe should reach. Each replicate
    as the book trains it (stopped by the window test), and the first also trained on to the iteration cap (the
    networks chapter's comparison, :func:`intriguing.chapters.networks.cap_comparison`).

    Returns:
        One row per (``stopped by``: ``"window test"`` or ``"cap"``, ``replicate``): ``test error (%)``,
        ``training error (%)`` and ``iterations``.
    """
    profile = get_profile(profile)
    train, test = training_split("train", profile), load_mnist("test")
    runs = [("window test", r, False) for r in replicates("N100-100-10", profile)] + [("cap", 0, True)]
    rows = []
    for stop, replicate, to_cap in runs:
        net = trained_network("N100-100-10", profile, replicate=replicate, to_cap=to_cap)
        rows.append({"stopped by": stop, "replicate": replicate, "test error (%)": 100 * error_rate(net.model, test),
                     "training error (%)": 100 * error_rate(net.model, train),
                     "iterations": net.stages["lbfgs"].iterations})
    return pd.DataFrame(rows).set_index(["stopped by", "replicate"])


def full_batch_verdict(reference: pd.DataFrame, found: pd.DataFrame) -> str:
    """Whether the full-batch network's lead over the minibatch weight-decay networks comes with the window
    test's early stop, in one sentence with its numbers: it does when trained on to the cap it lies within
    :data:`intriguing.paper.SPREAD_SDS` sds of the minibatch seeds' mean while, stopped by the window test, it lies
    below that.

    Args:
        reference: :func:`lbfgs_reference`'s table.
        found: :func:`results`' table (its ``weight decay`` seeds).
    """
    window = reference.xs("window test")["test error (%)"]
    first, cap = window.loc[0], reference.loc[("cap", 0), "test error (%)"]
    minibatch = found.xs("weight decay")["test error"]
    mean, sd = minibatch.mean(), minibatch.std()
    numbers = (f"trained on to the cap, the full-batch network gives {cap:.2f} % test error against {first:.2f} % "
               f"when the window test stops it (its replicates so stopped: {window.mean():.2f} ± "
               f"{window.std():.2f} %); the minibatch networks give {mean:.2f} ± {sd:.2f} %")
    if reference.loc[("cap", 0), "iterations"] == reference.loc[("window test", 0), "iterations"]:
        return f"The window test stopped nothing early here: the cap changes nothing ({first:.2f} %)."
    if not sd > 0:
        return f"With one minibatch seed there is no spread to judge by: {numbers}."
    if mean - first <= paper.SPREAD_SDS * sd:
        return f"The full-batch network has no lead beyond the minibatch seeds' spread: {numbers}."
    if abs(mean - cap) <= paper.SPREAD_SDS * sd:
        return f"Its lead comes with the window test's early stop, not with the full batch: {numbers}."
    return f"The early stop does not account for the full-batch network's lead: {numbers}."


def pool_contents(found: pd.DataFrame, profile: Profile | str | None = None) -> pd.DataFrame:
    """What the input pools held at the end of training, as the book's Conv (a network trained apart,
    :func:`intriguing.artifacts.trained_network`) classifies their kept examples
    (:func:`intriguing.adversarial_training.pool_verdicts`): per variant with a pool at the input, the
    share (%) of each verdict, the mean over seeds.

    Returns:
        Rows: variants; columns :data:`intriguing.adversarial_training.POOL_VERDICTS` (%), ``examples``
        (per seed) and ``seeds``.
    """
    judge = trained_network("Conv", get_profile(profile)).model
    rows = []
    for (variant, seed), kept in found["input pool"].items():
        if kept:
            counts = pool_verdicts(judge, kept)
            rows.append({"variant": variant, "seed": seed, "examples": sum(counts.values()),
                         **{name: 100 * n / sum(counts.values()) for name, n in counts.items()}})
    if not rows:
        raise ValueError("no variant kept an input pool")
    grouped = pd.DataFrame(rows).groupby("variant", sort=False)
    return grouped[list(POOL_VERDICTS)].mean().assign(examples=grouped["examples"].first(),
                                                       seeds=grouped["seed"].nunique())


def pools_verdict(found: pd.DataFrame, table: pd.DataFrame, reading: str) -> str:
    """The chapter's answer in one sentence: which reading of the pools at every layer (the first, or
    ``reading``, the chosen one) beats both weight decay and dropout by :func:`orderings` ``found``, how
    close the best comes to §4.2's 1.2 % (means of :func:`summary` ``table``), and what the positive
    control says about the pipeline."""
    readings = {"pools at every layer": "the first reading", BEST_READING: f"the reading '{reading}'"}
    beats = [variant for variant in readings
             if all(found.loc[f"{variant} < {baseline}", "verdict"] == "holds" for baseline in ("weight decay", "dropout"))]
    closest = min(readings, key=lambda variant: table.loc[variant, "test error"])
    if beats:
        best = min(beats, key=lambda variant: table.loc[variant, "test error"])
        said = (f"Pools at every layer under {readings[best]} beat both weight decay and dropout, at "
                f"{table.loc[best, 'test error']:.2f} % test error (§4.2: below 1.2 %).")
    else:
        said = (f"No reading of the pools at every layer beats both weight decay and dropout: the closer, "
                f"{readings[closest]}, is at {table.loc[closest, 'test error']:.2f} % test error (§4.2: below 1.2 %, "
                f"weight decay here {table.loc['weight decay', 'test error']:.2f} %).")
    control = found.loc[f"{CONTROL} < weight decay", "verdict"]
    if control == "holds":
        return said + " The positive control lowers the error, so this pipeline can show an adversarial regulariser helping."
    if control == "reversed":
        return said + (" The positive control raises the error too, so this pipeline shows no adversarial regulariser "
                       "helping, the literature's included.")
    return said + (" The positive control's ordering against weight decay is not resolved, so this run cannot tell "
                   "whether the pipeline would show an adversarial regulariser helping.")


def decide_claims(found: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Decide :data:`CLAIMS` from :func:`orderings` and :func:`summary` (for the means and the seeds).

    Returns:
        The claims table of :func:`intriguing.paper.claims_table`.
    """
    rows = []
    for key, pairs in CLAIM_ORDERINGS.items():
        cases = {f"{lower} < {higher}": paper.ordering_case(found.loc[f"{lower} < {higher}", "verdict"])
                 for lower, higher in pairs}
        said = "; ".join(f"{lower} {table.loc[lower, 'test error']:.2f} % vs {higher} "
                         f"{table.loc[higher, 'test error']:.2f} % ({found.loc[f'{lower} < {higher}', 'test']}, "
                         f"{found.loc[f'{lower} < {higher}', 'verdict']})" for lower, higher in pairs)
        seeds = int(table["seeds"].min())
        measurement = f"{said}; {seeds} seed{'s' if seeds != 1 else ''} per variant"
        if key == "higher-layers-more-useful":
            baseline = table.loc["weight decay", "test error"]
            worse = [lower for lower, _ in pairs if table.loc[lower, "test error"] > baseline]
            if worse:
                measurement += (f"; {' and '.join(worse)} above weight decay's {baseline:.2f} %, so 'more useful' "
                                "here means 'hurts less'")
        rows.append(paper.decide(key, cases, measurement))
    return paper.claims_table(rows)
