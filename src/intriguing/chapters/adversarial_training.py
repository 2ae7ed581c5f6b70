"""The adversarial-training chapter (§4.2): a 100-100-10 sigmoid network trained with pools of
adversarial examples at its layers, against weight decay alone and dropout, over several seeds."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from .. import cache, paper, plots
from ..adversarial_training import AdversarialTrainingSettings, adversarial_fit_many
from ..artifacts import attacked_images, training_split
from ..attacks import min_distortion_attack
from ..data import Split, load_mnist
from ..evaluate import error_rate
from ..models import FC_DECAY, SigmoidMLP
from ..paper import Tolerance
from ..profiles import Profile, get_profile
from ..spread import ORDERING_VERDICTS, paired_ordering

__all__ = ["CLAIMS", "CONTROL", "DROPOUT_TRIED", "EPSILONS_TRIED", "LAYER_NAMES", "LEVEL", "ORDERINGS", "VARIANTS",
           "check_orderings", "choose", "compare_paper", "control_tuning", "decide_claims", "error_curves", "orderings",
           "pool_figure", "pool_record", "pool_search_cost", "pool_summary", "pooled_settings", "results", "summary",
           "tuning"]

FORMAT = 2  # bump to retrain every variant after a change to how they are trained (2: trained seeds together)
HIDDEN = (100, 100)
VARIANTS = {
    "weight decay": (),
    "dropout": (),
    "pool at the input": (0,),
    "pool at hidden layer 1": (1,),
    "pool at hidden layer 2": (2,),
    "pools at every layer": (0, 1, 2),
    "fast gradient sign": (),
}
"""Variant -> its pooled layers (0: the input). Every variant keeps the FC networks' weight decay;
"dropout" adds the dropout rates chosen by :func:`tuning`, and every variant trains with the
learning rate chosen there (:func:`choose`). :data:`CONTROL` trains on fast-gradient-sign examples at
the ε chosen by :func:`control_tuning`."""
CONTROL = "fast gradient sign"
"""The positive control: adversarial training that the literature reports helping (Goodfellow, Shlens &
Szegedy 2015, §6), with the weight-decay variant's network, recipe and seeds."""
EPSILONS_TRIED = (0.05, 0.1, 0.2)
"""The control's ε tried on the held-out images (pixels in [0, 1])."""
DROPOUT_TRIED = [(0.0, 0.0), (0.0, 0.2), (0.0, 0.5), (0.2, 0.5)]
"""(input, hidden) dropout rates tried on a held-out part of the training set; (0, 0) is weight decay alone."""
VALIDATION = 10_000  # training images held out for the tuning (a 1/6 share of a subset)
ORDERINGS = [
    ("pools at every layer", "dropout"),
    ("dropout", "weight decay"),
    ("pools at every layer", "weight decay"),
    ("pool at hidden layer 2", "pool at the input"),
    ("pool at hidden layer 1", "pool at the input"),
    (CONTROL, "weight decay"),
]
"""The paper's orderings, each as (should be lower, should be higher) in test error, and the control's."""
CLAIM_ORDERINGS = {
    "adversarial-training-improves": [("pools at every layer", "weight decay"), ("pools at every layer", "dropout")],
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
    the networks trained together with it), and its pools' refreshes
    (:attr:`intriguing.adversarial_training.TrainingCurve.refresh_log`)."""

    model: SigmoidMLP
    test_error: list[float]
    seconds: float
    refresh_log: list[dict[str, float]]


def _train(variant: str, settings: AdversarialTrainingSettings, train: Split, profile: Profile, seeds: list[int],
           selection: dict[str, object]) -> list[TrainedVariant]:
    """The networks of one variant, one per seed, loaded from the cache; those missing are trained
    together (:func:`intriguing.adversarial_training.adversarial_fit_many`) and stored one by one."""
    keys = {seed: {"format": FORMAT, "hidden": HIDDEN, "weight_decay": FC_DECAY, "settings": settings.key(),
                   "seed": seed, "train_subset": profile.train_subset, **selection} for seed in seeds}
    names = {seed: f"{variant}-seed{seed}".replace(" ", "_") for seed in seeds}
    records = {seed: cache.lookup("adversarial-training", names[seed], keys[seed]) for seed in seeds}
    missing = [seed for seed in seeds if records[seed] is cache.MISSING]
    if missing:
        cache.check_writable("adversarial-training")
        models = []
        for seed in missing:
            torch.manual_seed(seed)
            models.append(SigmoidMLP(HIDDEN))
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
        trained.append(TrainedVariant(model.eval(), curve["test_error"], curve["seconds"], curve.get("refresh_log", [])))
    return trained


def _held_out_split(profile: Profile) -> tuple[Split, Split]:
    """The profile's training images without, and then only, the share held out for choosing settings."""
    train = training_split("train", profile)
    held = min(VALIDATION, len(train) // 6)
    return train.subset(slice(0, len(train) - held)), train.subset(slice(len(train) - held, len(train)))


def tuning(profile: Profile | str | None = None) -> pd.DataFrame:
    """Every learning rate of the profile with every dropout setting of :data:`DROPOUT_TRIED`: each
    trained with the first seed on the profile's training images minus a held-out share, and its
    error (%) on the held-out images.

    Returns:
        One row per setting: ``lr``, ``input dropout``, ``hidden dropout``, ``held-out error (%)``.
    """
    profile = get_profile(profile)
    fit, check = _held_out_split(profile)
    held = len(check)
    rows = []
    for lr in profile.adversarial_learning_rates:
        for p_in, p_hidden in DROPOUT_TRIED:
            settings = replace(profile.adversarial_training, pool_layers=(), lr=lr, dropout_input=p_in,
                               dropout_hidden=p_hidden)
            (net,) = _train("tuning", settings, fit, profile, [0], {"held_out": held})
            rows.append({"lr": lr, "input dropout": p_in, "hidden dropout": p_hidden,
                         "held-out error (%)": 100 * error_rate(net.model, check)})
    return pd.DataFrame(rows)


def choose(tuned: pd.DataFrame) -> dict[str, dict[str, float]]:
    """The settings a :func:`tuning` table picks: for ``"weight decay"`` (and every pooled variant)
    the learning rate with the lowest held-out error without dropout, for ``"dropout"`` the learning
    rate and rates with the lowest held-out error among the settings with dropout.

    Returns:
        ``{"weight decay": {"lr": …}, "dropout": {"lr": …, "dropout_input": …, "dropout_hidden": …}}``.

    Raises:
        ValueError: the table lacks settings with dropout or without it.
    """
    plain = (tuned["input dropout"] == 0) & (tuned["hidden dropout"] == 0)
    if not plain.any() or plain.all():
        raise ValueError("the tuning table needs settings both with and without dropout")
    best_plain = tuned.loc[tuned.loc[plain, "held-out error (%)"].idxmin()]
    best_dropout = tuned.loc[tuned.loc[~plain, "held-out error (%)"].idxmin()]
    return {"weight decay": {"lr": float(best_plain["lr"])},
            "dropout": {"lr": float(best_dropout["lr"]), "dropout_input": float(best_dropout["input dropout"]),
                        "dropout_hidden": float(best_dropout["hidden dropout"])}}


def pooled_settings(profile: Profile | str | None = None) -> AdversarialTrainingSettings:
    """The profile's settings of the variant with pools at every layer, before :func:`tuning` chooses
    the learning rate."""
    return replace(get_profile(profile).adversarial_training, pool_layers=VARIANTS["pools at every layer"])


def _settings(variant: str, profile: Profile, tuned: pd.DataFrame, epsilon: float = 0.0) -> AdversarialTrainingSettings:
    chosen = choose(tuned)["dropout" if variant == "dropout" else "weight decay"]
    return replace(profile.adversarial_training, pool_layers=VARIANTS[variant], lr=chosen["lr"],
                   dropout_input=chosen.get("dropout_input", 0.0), dropout_hidden=chosen.get("dropout_hidden", 0.0),
                   fgsm_epsilon=epsilon if variant == CONTROL else 0.0)


def control_tuning(profile: Profile | str | None = None, tuned: pd.DataFrame | None = None) -> pd.DataFrame:
    """The control's ε: every ε of :data:`EPSILONS_TRIED`, with the weight-decay variant's settings, trained
    with the first seed on the profile's training images minus the held-out share of :func:`tuning`,
    and its error (%) on the held-out images; the chosen ε is the one with the lowest.

    Returns:
        One row per ε: ``epsilon``, ``held-out error (%)``, ``chosen``.
    """
    profile = get_profile(profile)
    tuned = tuning(profile) if tuned is None else tuned
    fit, check = _held_out_split(profile)
    held = len(check)
    rows = []
    for epsilon in EPSILONS_TRIED:
        (net,) = _train("control tuning", _settings(CONTROL, profile, tuned, epsilon), fit, profile, [0],
                        {"held_out": held})
        rows.append({"epsilon": epsilon, "held-out error (%)": 100 * error_rate(net.model, check)})
    table = pd.DataFrame(rows)
    return table.assign(chosen=table["held-out error (%)"] == table["held-out error (%)"].min())


def _chosen_epsilon(control: pd.DataFrame) -> float:
    return float(control.loc[control["chosen"], "epsilon"].iloc[0])


def results(profile: Profile | str | None = None, tuned: pd.DataFrame | None = None,
            control: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every variant and seed: test and training error (%), the average minimum distortion of its
    adversarial test images (random targets, the book's search), and its training time. ``control`` is
    :func:`control_tuning`'s table (computed when None).

    Returns:
        Rows (variant, seed); columns ``test error``, ``training error``, ``distortion``,
        ``success (%)``, ``seconds``, ``curve`` (the test error after each epoch) and ``refreshes``
        (each pool refresh, :attr:`intriguing.adversarial_training.TrainingCurve.refresh_log`).
    """
    profile = get_profile(profile)
    tuned = tuning(profile) if tuned is None else tuned
    epsilon = _chosen_epsilon(control_tuning(profile, tuned) if control is None else control)
    train, test = training_split("train", profile), load_mnist("test")
    attacked = attacked_images("test", profile).subset(slice(0, profile.adversarial_distortion_examples))
    rows = []
    for variant in VARIANTS:
        settings = _settings(variant, profile, tuned, epsilon)
        for seed, net in enumerate(_train(variant, settings, train, profile, list(range(profile.adversarial_seeds)), {})):
            attack = min_distortion_attack(net.model, attacked.images, attacked.targets, labels=attacked.labels,
                                           settings=profile.search, progress=False)
            rows.append({"variant": variant, "seed": seed, "test error": 100 * error_rate(net.model, test),
                         "training error": 100 * error_rate(net.model, train),
                         "distortion": attack.distortion[attack.success].mean().item(),
                         "success (%)": 100 * attack.success.double().mean().item(),
                         "seconds": net.seconds, "curve": net.test_error, "refreshes": net.refresh_log})
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


def pool_search_cost(profile: Profile | str | None = None, tuned: pd.DataFrame | None = None) -> pd.DataFrame:
    """The pools' cheaper search against the chapter's, on the weight-decay network's first seed and the
    same attacked test images: mean distortion, success and seconds per 1000 examples."""
    profile = get_profile(profile)
    settings = _settings("weight decay", profile, tuning(profile) if tuned is None else tuned)
    seeds = list(range(profile.adversarial_seeds))  # as results() trains them: together, the first one used here
    model = _train("weight decay", settings, training_split("train", profile), profile, seeds, {})[0].model
    attacked = attacked_images("test", profile).subset(slice(0, profile.adversarial_distortion_examples))
    rows = {}
    for name, search in (("the pools' search", settings.search), ("the book's search", profile.search)):
        start = time.perf_counter()
        result = min_distortion_attack(model, attacked.images, attacked.targets, labels=attacked.labels,
                                       settings=search, progress=False)
        rows[name] = {"settings": search.describe().replace("\n", "; "),
                      "distortion": result.distortion[result.success].mean().item(),
                      "success (%)": 100 * result.success.double().mean().item(),
                      "s / 1000 examples": 1000 * (time.perf_counter() - start) / len(attacked)}
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
