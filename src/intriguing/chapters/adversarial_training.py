"""The adversarial-training chapter (§4.2): a 100-100-10 sigmoid network trained with pools of
adversarial examples at its layers, against weight decay alone and dropout, over several seeds."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from .. import cache, paper, plots
from ..adversarial_training import AdversarialTrainingSettings, adversarial_fit
from ..artifacts import attacked_images, training_split
from ..attacks import min_distortion_attack
from ..data import Split, load_mnist
from ..evaluate import error_rate
from ..models import FC_DECAY, SigmoidMLP
from ..paper import Tolerance
from ..profiles import Profile, get_profile

__all__ = ["CLAIMS", "DROPOUT_TRIED", "EXPECTED_ORDERINGS", "ORDERINGS", "VARIANTS", "check_orderings", "choose",
           "compare_paper", "decide_claims", "error_curves", "orderings", "pool_search_cost", "pooled_settings",
           "results", "summary", "tuning"]

FORMAT = 1  # bump to retrain every variant after a change to how they are trained
HIDDEN = (100, 100)
VARIANTS = {
    "weight decay": (),
    "dropout": (),
    "pool at the input": (0,),
    "pool at hidden layer 1": (1,),
    "pool at hidden layer 2": (2,),
    "pools at every layer": (0, 1, 2),
}
"""Variant -> its pooled layers (0: the input). Every variant keeps the FC networks' weight decay;
"dropout" adds the dropout rates chosen by :func:`tuning`, and every variant trains with the
learning rate chosen there (:func:`choose`)."""
DROPOUT_TRIED = [(0.0, 0.0), (0.0, 0.2), (0.0, 0.5), (0.2, 0.5)]
"""(input, hidden) dropout rates tried on a held-out part of the training set; (0, 0) is weight decay alone."""
VALIDATION = 10_000  # training images held out for the tuning (a 1/6 share of a subset)
ORDERINGS = [
    ("pools at every layer", "dropout"),
    ("dropout", "weight decay"),
    ("pools at every layer", "weight decay"),
    ("pool at hidden layer 2", "pool at the input"),
    ("pool at hidden layer 1", "pool at the input"),
]
"""The paper's orderings, each as (should be lower, should be higher) in test error."""
CLAIM_ORDERINGS = {
    "adversarial-training-improves": [("pools at every layer", "weight decay"), ("pools at every layer", "dropout")],
    "dropout-beats-weight-decay": [("dropout", "weight decay")],
    "higher-layers-more-useful": [("pool at hidden layer 2", "pool at the input"),
                                  ("pool at hidden layer 1", "pool at the input")],
}
"""Each claim of :data:`CLAIMS` and the orderings that decide it."""
CLAIMS = tuple(CLAIM_ORDERINGS)
"""The claims of :data:`intriguing.paper.CLAIMS` this chapter decides."""
EXPECTED_ORDERINGS: dict[tuple[str, str], str] = {
    ("pools at every layer", "dropout"): "reversed",
    ("dropout", "weight decay"): "not resolved",
    ("pools at every layer", "weight decay"): "reversed",
    ("pool at hidden layer 2", "pool at the input"): "holds",
    ("pool at hidden layer 1", "pool at the input"): "holds",
}
"""At the paper's scale, the verdict the last full run measured for each ordering (2026-11-22, 3 seeds,
2 CPU cores); the check asserts it, so a change of outcome cannot go unnoticed."""


@dataclass
class TrainedVariant:
    """One network of a variant: the model, its test error (%) after each epoch, its training time."""

    model: SigmoidMLP
    test_error: list[float]
    seconds: float


def _train(variant: str, settings: AdversarialTrainingSettings, train: Split, profile: Profile, seed: int,
           selection: dict[str, object]) -> TrainedVariant:
    """One network of a variant, trained or loaded from the cache."""
    key = {"format": FORMAT, "hidden": HIDDEN, "weight_decay": FC_DECAY, "settings": settings.key(), "seed": seed,
           "train_subset": profile.train_subset, **selection}

    def compute() -> dict[str, Any]:
        torch.manual_seed(seed)
        model = SigmoidMLP(HIDDEN)
        curve = adversarial_fit(model, train, settings, weight_decay=FC_DECAY, seed=seed,
                                evaluation=load_mnist("test"))
        return {"state_dict": model.state_dict(), "curve": asdict(curve)}

    record = cache.cached("adversarial-training", f"{variant}-seed{seed}".replace(" ", "_"), key, compute)
    model = SigmoidMLP(HIDDEN)
    model.load_state_dict(record["state_dict"])
    return TrainedVariant(model.eval(), record["curve"]["test_error"], record["curve"]["seconds"])


def tuning(profile: Profile | str | None = None) -> pd.DataFrame:
    """Every learning rate of the profile with every dropout setting of :data:`DROPOUT_TRIED`: each
    trained with the first seed on the profile's training images minus a held-out share, and its
    error (%) on the held-out images.

    Returns:
        One row per setting: ``lr``, ``input dropout``, ``hidden dropout``, ``held-out error (%)``.
    """
    profile = get_profile(profile)
    train = training_split("train", profile)
    held = min(VALIDATION, len(train) // 6)
    fit, check = train.subset(slice(0, len(train) - held)), train.subset(slice(len(train) - held, len(train)))
    rows = []
    for lr in profile.adversarial_learning_rates:
        for p_in, p_hidden in DROPOUT_TRIED:
            settings = replace(profile.adversarial_training, pool_layers=(), lr=lr, dropout_input=p_in,
                               dropout_hidden=p_hidden)
            net = _train("tuning", settings, fit, profile, 0, {"held_out": held})
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


def _settings(variant: str, profile: Profile, tuned: pd.DataFrame) -> AdversarialTrainingSettings:
    chosen = choose(tuned)["dropout" if variant == "dropout" else "weight decay"]
    return replace(profile.adversarial_training, pool_layers=VARIANTS[variant], lr=chosen["lr"],
                   dropout_input=chosen.get("dropout_input", 0.0), dropout_hidden=chosen.get("dropout_hidden", 0.0))


def results(profile: Profile | str | None = None, tuned: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every variant and seed: test and training error (%), the average minimum distortion of its
    adversarial test images (random targets, the book's search), and its training time.

    Returns:
        Rows (variant, seed); columns ``test error``, ``training error``, ``distortion``,
        ``success (%)``, ``seconds`` and ``curve`` (the test error after each epoch).
    """
    profile = get_profile(profile)
    tuned = tuning(profile) if tuned is None else tuned
    train, test = training_split("train", profile), load_mnist("test")
    attacked = attacked_images("test", profile).subset(slice(0, profile.adversarial_distortion_examples))
    rows = []
    for variant in VARIANTS:
        settings = _settings(variant, profile, tuned)
        for seed in range(profile.adversarial_seeds):
            net = _train(variant, settings, train, profile, seed, {})
            attack = min_distortion_attack(net.model, attacked.images, attacked.targets, labels=attacked.labels,
                                           settings=profile.search, progress=False)
            rows.append({"variant": variant, "seed": seed, "test error": 100 * error_rate(net.model, test),
                         "training error": 100 * error_rate(net.model, train),
                         "distortion": attack.distortion[attack.success].mean().item(),
                         "success (%)": 100 * attack.success.double().mean().item(),
                         "seconds": net.seconds, "curve": net.test_error})
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
    """Our mean test errors beside §4.2's, within ``profile.error_tolerance_pp``."""
    ours = table.loc[list(paper.ADVERSARIAL_TRAINING.index), ["test error"]].rename(columns={"test error": "Test error"})
    return paper.compare_with_paper(ours, "§4.2 adversarial training", Tolerance(profile.error_tolerance_pp),
                                    profile=profile.name)


def orderings(found: pd.DataFrame) -> pd.DataFrame:
    """Each of the paper's orderings, tested on the seeds' mean test errors.

    Returns:
        Per ordering: the difference of means (lower − higher, pp), its standard error
        √(sd²/n + sd²/n), their ratio z, the test in words (``"z = −3.1"``, or ``"one seed: no test"``),
        and the verdict: ``"holds"`` (difference < 0 and z ≤ −2), ``"reversed"`` (z ≥ 2) or
        ``"not resolved"`` (|z| < 2, or a single seed).
    """
    stats = found.groupby(level="variant")["test error"].agg(["mean", "std", "count"])
    rows = []
    for lower, higher in ORDERINGS:
        a, b = stats.loc[lower], stats.loc[higher]
        diff = a["mean"] - b["mean"]
        se = float(np.sqrt(a["std"] ** 2 / a["count"] + b["std"] ** 2 / b["count"]))
        z = diff / se if se > 0 else float("nan")
        verdict = "not resolved" if not np.isfinite(z) or abs(z) < 2 else ("holds" if z < 0 else "reversed")
        test = f"z = {z:.1f}" if np.isfinite(z) else \
            "one seed: no test" if min(a["count"], b["count"]) < 2 else "no spread: no test"
        rows.append({"ordering": f"{lower} < {higher}", "difference (pp)": diff, "standard error (pp)": se,
                     "z": z, "test": test, "verdict": verdict})
    return pd.DataFrame(rows).set_index("ordering")


def check_orderings(found: pd.DataFrame, profile: Profile) -> None:
    """Every verdict is one of the three; at the paper's scale each is the one the last full run
    measured (:data:`EXPECTED_ORDERINGS`)."""
    assert found["verdict"].isin(["holds", "reversed", "not resolved"]).all(), found
    if profile.paper_scale:
        measured = {tuple(o.split(" < ")): v for o, v in found["verdict"].items()}
        assert measured == EXPECTED_ORDERINGS, (measured, EXPECTED_ORDERINGS)


def pool_search_cost(profile: Profile | str | None = None, tuned: pd.DataFrame | None = None) -> pd.DataFrame:
    """The pools' cheaper search against the chapter's, on the weight-decay network's first seed and the
    same attacked test images: mean distortion, success and seconds per 1000 examples."""
    profile = get_profile(profile)
    settings = _settings("weight decay", profile, tuning(profile) if tuned is None else tuned)
    model = _train("weight decay", settings, training_split("train", profile), profile, 0, {}).model
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
