"""The blind-spots chapter (§4.1): Table 1's distortion, Figure 7, the exact optimum and the peer attacks."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from .. import paper, plots, spread
from ..artifacts import adversarial_set, attacked_images, cached, min_over_targets, replicates, trained_network
from ..attacks import AttackResult, exact_linear_attack
from ..evaluate import predict
from ..hardware import device
from ..lbfgs_box import BACKTRACKINGS
from ..models import SOFTMAX_NETWORKS
from ..paper import Tolerance
from ..peers import SCIPY, TIMING, compare_attacks
from ..profiles import Profile, get_profile
from ..spread import beside_paper, replicate_means
from ..train import DECAY_MODES, DEFAULT_DECAY
from ..transfer import gaussian_noise

__all__ = ["BOOKS_SEARCH", "CLAIMS", "FIGURE7_NETWORKS", "PEER_NETWORK", "READINGS_NETWORK", "SEARCH_READINGS",
           "SHARPENED_LOGIT_SCALE", "beside_paper", "check_exact", "check_noise_readings", "check_peers",
           "check_success", "compare_table1", "decide_claims", "distortion_readings", "exact_comparison", "figure7",
           "noise_accuracy", "noise_figure", "peer_table", "replicate_means", "table1_distortion",
           "table1_distortion_samples"]

TABLE1_NETWORKS = list(paper.TABLE1.index)
FIGURE7_NETWORKS = ["softmax1", "N200-200-10"]
PEER_NETWORK = "N100-100-10"
SHARPENED_LOGIT_SCALE = 10.0
"""The logit scale of the sharpened objective that measures the solver against the exact optimum."""
FIGURE7_NOISE = paper.FIGURES["figure7c_noise_stddev"]
CLAIMS = ("adversarial-near-every-image", "noise-far-weaker")
"""The claims of :data:`intriguing.paper.CLAIMS` this chapter decides."""


def table1_distortion(profile: Profile | str | None = None) -> pd.DataFrame:
    """Table 1's "Av. min. distortion" column, with random targets and with the minimum over targets.

    Returns:
        One row per Table 1 network: ``Av. min. distortion`` (random targets, the attacked
        training images), its success rate (%), ``min over targets`` (the first
        ``min_target_examples`` images), ``random / min`` and the attacked image count.
    """
    profile = get_profile(profile)
    rows = {}
    for name in TABLE1_NETWORKS:
        _, random = adversarial_set(name, "train", profile, images=False)
        _, minimum = min_over_targets(name, profile)
        rows[name] = {"Av. min. distortion": random.distortion[random.success].mean().item(),
                      "success (%)": 100 * random.success.double().mean().item(),
                      "min over targets": minimum.distortion[minimum.success].mean().item(),
                      "examples": len(random.success)}
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("network")
    table.insert(3, "random / min", table["Av. min. distortion"] / table["min over targets"])
    return table


def table1_distortion_samples(profile: Profile | str | None = None) -> pd.DataFrame:
    """Table 1's "Av. min. distortion" (random targets, the attacked training images) of every
    replicate the profile attacks of each network, with its success rate (%).

    Returns:
        One row per (network, replicate): ``Av. min. distortion`` and ``success (%)``.
    """
    profile = get_profile(profile)
    rows = {}
    for name in TABLE1_NETWORKS:
        for r in replicates(name, profile):
            _, result = adversarial_set(name, "train", profile, replicate=r, images=False)
            rows[(name, r)] = {"Av. min. distortion": result.distortion[result.success].mean().item(),
                               "success (%)": 100 * result.success.double().mean().item()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(["network", spread.REPLICATE])


def check_success(table: pd.DataFrame) -> None:
    """Every attacked image must reach its target."""
    assert (table["success (%)"] == 100).all(), table["success (%)"]


def compare_table1(samples: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Our distortion column (the replicates' means) beside Table 1's; raises outside
    max(``profile.distortion_tolerance`` relative, 3 sd of the replicates)."""
    column = samples[["Av. min. distortion"]]
    return paper.compare_with_paper(spread.replicate_means(column), "Table 1",
                                    Tolerance(profile.distortion_tolerance, relative=True), profile=profile.name,
                                    spread=spread.replicate_sd(column))


def figure7(name: str, profile: Profile | str | None = None, count: int = 10) -> tuple[float, float, Figure]:
    """Figure 7's panel for one network: the first ``count`` attacked training images beside their
    adversarial images.

    Returns:
        Their mean distortion, the mean over every attacked image, and the figure.
    """
    images, first = adversarial_set(name, "train", profile, examples=count)
    _, every = adversarial_set(name, "train", profile, images=False)
    return (first.distortion.mean().item(), every.distortion.mean().item(),
            plots.pairs_grid(images.images, first.adversarial))


def noise_accuracy(profile: Profile | str | None = None) -> pd.DataFrame:
    """Figure 7c's control on every Table 1 network (the caption does not name its network): accuracy
    (%) on the attacked training images plus Gaussian noise of stddev 1, unclipped (the paper's
    reading) and clipped to [0, 1], and the unclipped accuracy's distance from the caption's 51 %."""
    images = attacked_images("train", profile)
    noisy = gaussian_noise(images.images, stddev=FIGURE7_NOISE, seed=0)
    rows = {}
    for name in TABLE1_NETWORKS:
        model = trained_network(name, profile).model
        rows[name] = {"unclipped":
                      100 * (predict(model, noisy, in_box=False) == images.labels).double().mean().item(),
                      "clipped to [0, 1]": 100 * (predict(model, noisy.clamp(0, 1)) == images.labels).double().mean().item()}
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("network")
    table["unclipped − paper (pp)"] = table["unclipped"] - paper.FIGURES["figure7c_noise_accuracy_percent"]
    return table


def noise_figure(profile: Profile | str | None = None, count: int = 10) -> Figure:
    """The first ``count`` attacked training images beside the same with noise of stddev 1, shown clipped."""
    images = attacked_images("train", profile)
    noisy = gaussian_noise(images.images[:count], stddev=FIGURE7_NOISE, seed=0)
    return plots.pairs_grid(images.images[:count], noisy.clamp(0, 1))


def check_noise_readings(accuracy: pd.DataFrame) -> None:
    """On the Figure 7 networks, accuracy under unclipped noise must exceed accuracy under clipped noise."""
    shown = accuracy.loc[FIGURE7_NETWORKS]
    assert (shown["unclipped"] > shown["clipped to [0, 1]"]).all(), accuracy


def exact_comparison(profile: Profile | str | None = None) -> pd.DataFrame:
    """Our search against the exact optimum on the linear softmax models, on the first
    ``profile.exact_examples`` attacked training images.

    Two objectives are compared: the paper's (cross-entropy on the logits) and a sharpened one
    (cross-entropy on :data:`SHARPENED_LOGIT_SCALE` × the logits), whose minimiser is not pulled
    off the closest point of the target region by the soft maximum.

    Returns:
        One row per softmax network: the images compared, the exact QP's mean distortion, each objective's mean
        distortion and its ratio to the exact one (over the images all three succeed on), and the
        success rates (%).
    """
    profile = get_profile(profile)
    sharp = replace(profile.search, logit_scale=SHARPENED_LOGIT_SCALE)
    rows = {}
    for name in SOFTMAX_NETWORKS:
        images, paper_objective = adversarial_set(name, "train", profile, examples=profile.exact_examples,
                                                  images=False)
        _, sharpened = adversarial_set(name, "train", profile, settings=sharp, examples=profile.exact_examples,
                                       images=False)
        linear = trained_network(name, profile).model.weight_layers()[0]
        assert isinstance(linear, nn.Linear) and linear.bias is not None
        exact = AttackResult(**cached(
            "attacks-exact", name, profile,
            lambda: asdict(exact_linear_attack(linear.weight, linear.bias, images.images, images.targets,
                                               images.labels)),
            split="train", attack_examples=profile.attack_examples, target_seed=images.target_seed,
            examples=len(images), backtracking=BACKTRACKINGS[0]))
        ok = paper_objective.success & sharpened.success & exact.success
        optimum = exact.distortion[ok].mean()
        rows[name] = {"images": len(images), "exact": optimum.item(),
                      "ours, paper's objective": paper_objective.distortion[ok].mean().item(),
                      "paper's objective / exact": (paper_objective.distortion[ok].mean() / optimum).item(),
                      "ours, sharpened": sharpened.distortion[ok].mean().item(),
                      "sharpened / exact": (sharpened.distortion[ok].mean() / optimum).item(),
                      "success, all three (%)": 100 * ok.double().mean().item()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("network")


def check_exact(exact: pd.DataFrame) -> None:
    """No search beats the exact optimum; on the sharpened objective ours lands within 5 % of it."""
    assert (exact[["paper's objective / exact", "sharpened / exact"]] >= 1 - 1e-3).all().all(), \
        "no search can beat the exact optimum"
    assert (exact["sharpened / exact"] <= 1.05).all(), "the solver should reach the optimum of a sharp objective"


READINGS_NETWORK = "softmax1"
"""The network whose distortion :func:`distortion_readings` reads several ways: convex, so its search is
measured against the exact optimum above."""
BOOKS_SEARCH = "the book's"
SEARCH_READINGS: dict[str, dict[str, Any]] = {
    "c bisected in its bracket (the search before commit e284053)": {"c_update": "bisection"},
    "each c step's start evaluated afresh (as the pools' search does)": {"restart": "evaluated"},
    "first steps bounded by the pixel only (as the pools' search does)": {"first_step": "pixel"},
    "c from 1, every move by 10 (as the pools' search does)": {"c_init": 1.0, "first_c_factor": 10.0},
    "c from 1 by factors of 10 only (nothing tried inside the bracket)": {"bracket_tol": 9.0, "c_init": 1.0,
                                                                        "first_c_factor": 10.0},
    "3 c steps": {"c_steps": 3},
    "10 L-BFGS iterations per c": {"max_iter": 10},
    "3 L-BFGS iterations per c": {"max_iter": 3},
}
"""Readings of the search that §4.1 leaves open, each one change to the profile's search: c bisected inside its
bracket, a c search that stops once a success and a failure are a factor 10 apart, fewer c steps, fewer iterations
per c."""


def distortion_readings(profile: Profile | str | None = None) -> pd.DataFrame:
    """softmax1's mean distortion on the first ``profile.exact_examples`` attacked training images, read
    several ways: its weight decay's λ under each reading (:data:`intriguing.train.DECAY_MODES`, the book's
    search) and the search under each of :data:`SEARCH_READINGS` (the book's network), beside the paper's.

    Returns:
        One row per (λ reading, search), the book's first: images, success (%), the mean distortion over
        the successes and its ratio to Table 1's.
    """
    profile = get_profile(profile)
    name = READINGS_NETWORK
    count = profile.exact_examples
    found = {(mode, BOOKS_SEARCH): adversarial_set(name, "train", profile, examples=count, decay_mode=mode,
                                                   images=False)[1]
             for mode in sorted(DECAY_MODES, key=lambda mode: mode != DEFAULT_DECAY)}  # the book's first
    for reading, change in SEARCH_READINGS.items():
        settings = replace(profile.search, **change)
        found[(DEFAULT_DECAY, reading)] = adversarial_set(name, "train", profile, settings=settings, examples=count,
                                                          images=False)[1]
    paper_value = float(paper.TABLE1.loc[name, "Av. min. distortion"])
    rows = {key: {"images": len(result.success), "success (%)": 100 * result.success.double().mean().item(),
                  "mean distortion": result.distortion[result.success].mean().item()}
            for key, result in found.items()}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = pd.MultiIndex.from_tuples(list(rows), names=["λ reading", "search"])
    table["/ paper's"] = table["mean distortion"] / paper_value
    return table


def peer_table(profile: Profile | str | None = None) -> pd.DataFrame:
    """Ours, the per-example scipy reference and foolbox's FMN, DDN and C&W on the same images of
    :data:`PEER_NETWORK`.

    Every attack is timed in this call as :data:`intriguing.peers.TIMING` says, on the first
    ``profile.peer_examples`` attacked training images with their random targets (the slow scipy reference
    on the first ``profile.scipy_examples`` of them). The table is cached with the timings of the run that made it.

    Returns:
        One row per attack: examples, success (%), mean distortion over its successes, ours'
        mean distortion on the same examples, and seconds per 1000 examples.
    """
    profile = get_profile(profile)
    model = trained_network(PEER_NETWORK, profile).model
    images = attacked_images("train", profile).subset(slice(0, profile.peer_examples))
    rows = cached("peers", PEER_NETWORK, profile,
                  lambda: compare_attacks(model, images.images, images.targets, labels=images.labels,
                                          scipy_examples=profile.scipy_examples, settings=profile.search),
                  settings=profile.search, examples=profile.peer_examples, scipy_examples=profile.scipy_examples,
                  target_seed=images.target_seed, threads=torch.get_num_threads(), device=str(device()), timing=TIMING)
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("attack")


def check_peers(peers: pd.DataFrame) -> None:
    """On the scipy reference's examples, ours is within 1 % of its distortion."""
    scipy_row = peers.loc[SCIPY]
    assert scipy_row["ours on the same"] <= 1.01 * scipy_row["distortion"], scipy_row


def decide_claims(samples: pd.DataFrame, accuracy: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Decide :data:`CLAIMS` from :func:`table1_distortion_samples` and :func:`noise_accuracy`.

    Returns:
        The claims table of :func:`intriguing.paper.claims_table`.
    """
    means = replicate_means(samples)
    every_image = samples["success (%)"].groupby(level="network").min() == 100
    ratio = means["Av. min. distortion"] / paper.TABLE1.loc[means.index, "Av. min. distortion"]
    near = {name: bool(every_image[name] and ratio[name] <= 1 + profile.distortion_tolerance) for name in means.index}
    near_row = paper.decide(
        "adversarial-near-every-image", near,
        f"success {_range(samples['success (%)'], '.1f')} % over the six networks' replicates; "
        f"mean distortion {ratio.min():.2f}× ({ratio.idxmin()}) to {ratio.max():.2f}× ({ratio.idxmax()}) the "
        f"paper's (allowed: {1 + profile.distortion_tolerance:.2f}×)")
    paper_accuracy = paper.FIGURES["figure7c_noise_accuracy_percent"]
    shown = accuracy.loc[FIGURE7_NETWORKS, "unclipped"]
    noise = {name: bool(every_image[name] and abs(shown[name] - paper_accuracy) <= profile.transfer_tolerance_pp)
             for name in FIGURE7_NETWORKS}
    noise_row = paper.decide(
        "noise-far-weaker", noise,
        "accuracy under noise of stddev 1: " + ", ".join(f"{name} {shown[name]:.1f} %" for name in FIGURE7_NETWORKS)
        + f" (paper {paper_accuracy:.0f} %, ± {profile.transfer_tolerance_pp:g} pp); their adversarial images "
        + ("all" if all(every_image[name] for name in FIGURE7_NETWORKS) else "not all")
        + " reached a wrong target (accuracy 0 %)")
    return paper.claims_table([near_row, noise_row])


def _range(values: pd.Series, spec: str) -> str:
    """``"a"`` when every value formats as ``a``, else ``"a-b"``."""
    low, high = format(values.min(), spec), format(values.max(), spec)
    return low if low == high else f"{low}-{high}"
