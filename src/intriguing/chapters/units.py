"""The units chapter (§3, Figures 1-4): units of φ(x) against random directions, measured with a control."""

from __future__ import annotations

import os

import pandas as pd
import torch
from matplotlib.figure import Figure

from .. import paper, plots, units
from ..artifacts import replicates, trained_network
from ..data import load_mnist
from ..imagenet import IMAGENET_DIR_VAR, efficientnet_lite0, image_folder, imagenet_samples
from ..models import build_model
from ..profiles import Profile, get_profile

__all__ = ["ALPHA", "CLAIMS", "FIGURE_NETWORK", "NETWORKS", "TOP_K", "check_control", "check_verdicts",
           "coherence_table", "decide_claims", "figure_rows", "imagenet_rows", "imagenet_source",
           "replicate_verdicts", "verdict_text", "verdicts"]

NETWORKS = ["Conv", "N100-100-10", "AE400-10"]
FIGURE_NETWORK = "Conv"
TOP_K = 10
ALPHA = 0.01
EXPECTED_AT_PAPER_SCALE = {"Conv": ("random directions",), "N100-100-10": ("random directions", "neither"),
                           "AE400-10": ("units",)}
"""The verdicts our full-profile runs found, per network. N100-100-10's depends on the seed: over its three
replicates (2026-11-22, CPU) p was 3.6e-3, 0.81 and 0.010, so "random directions" once and "neither" twice
(and p = 0.023 for replicate 0 trained on a GPU); units never won."""
IMAGENET_FOLDER_LIMIT = 5000
CLAIMS = ("units-not-special",)
"""The claims of :data:`intriguing.paper.CLAIMS` this chapter decides."""


def figure_rows(kind: str, profile: Profile | str | None = None, shown: int = 4) -> tuple[list[float], Figure]:
    """Figures 1 (``kind="unit"``) and 2 (``"random direction"``) on MNIST: the top :data:`TOP_K` test
    images along the ``shown`` most label-pure directions of that kind of the Conv network's hidden layer.

    Returns:
        The label purity of each shown row, and the figure.
    """
    test = load_mnist("test")
    phi = units.activations(trained_network(FIGURE_NETWORK, profile).model, test.images)
    directions = {"unit": units.unit_directions(phi.shape[1]),
                  "random direction": units.random_directions(phi.shape[1], phi.shape[1], seed=0)}
    if kind not in directions:
        raise ValueError(f"unknown kind {kind!r}; choose one of {sorted(directions)}")
    top = units.top_images(phi, directions[kind], TOP_K)
    purity = units.coherence(top, test.labels, test.images.flatten(1))["label purity"]
    best = purity.sort_values(ascending=False, kind="stable").index[:shown]
    figure = plots.image_grid(test.images[top[best].flatten()], ncols=TOP_K, size=0.8)
    return [float(purity[i]) for i in best], figure


def coherence_table(profile: Profile | str | None = None, seed: int = 0) -> pd.DataFrame:
    """§3 measured on the MNIST test set: units against random directions of each network's last
    hidden layer, trained and, as a control, untrained (its initial weights, seeded).

    Returns:
        One row per (network, ``trained``/``untrained``) and score: the mean score of units and of
        random directions, the Mann-Whitney p-value and P(unit > random); and, on the untrained
        rows, ``p, trained vs untrained random``: whether the score tells the trained network's
        random directions from the untrained one's.
    """
    profile = get_profile(profile)
    test = load_mnist("test")
    pixels = test.images.flatten(1)
    frames = {}
    for name in NETWORKS:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            untrained = build_model(name)
        results = {state: units.unit_vs_random(units.activations(model, test.images), test.labels, pixels, TOP_K,
                                               seed)
                   for state, model in [("trained", trained_network(name, profile).model), ("untrained", untrained)]}
        control = units.compare_scores(results["trained"].random, results["untrained"].random)
        frames[(name, "trained")] = results["trained"].summary
        frames[(name, "untrained")] = results["untrained"].summary.assign(
            **{"p, trained vs untrained random": control["p-value"]})
    return pd.concat(frames, names=["network", "weights"])


def verdicts(table: pd.DataFrame, score: str = "label purity") -> pd.DataFrame:
    """Per network: the two means of ``score``, the p-value, and which kind of direction is
    significantly (p < :data:`ALPHA`) more coherent, or ``"neither"``."""
    trained = table.xs("trained", level="weights").xs(score, level="score")
    rows = {name: _verdict(row) for name, row in trained.iterrows()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("network")


def verdict_text(found: pd.DataFrame, network: str) -> str:
    """One network's verdict as a phrase: which kind is more label-pure, the two means and the p-value."""
    row = found.loc[network]
    return (f"{network}, {row['more coherent']} more label-pure ({row['mean, units']:.2f} vs "
            f"{row['mean, random']:.2f}, p = {row['p-value']:.1e})")


def _verdict(row: pd.Series) -> dict[str, object]:
    winner = "neither"
    if row["p-value"] < ALPHA:
        winner = "units" if row["mean, units"] > row["mean, random"] else "random directions"
    return {"mean, units": row["mean, units"], "mean, random": row["mean, random"], "p-value": row["p-value"],
            "more coherent": winner}


def replicate_verdicts(profile: Profile | str | None = None, seed: int = 0, score: str = "label purity") -> pd.DataFrame:
    """:func:`verdicts` on every replicate of each network the profile replicates (trained weights only).

    Returns:
        One row per (network, replicate), the columns of :func:`verdicts`.
    """
    profile = get_profile(profile)
    test = load_mnist("test")
    pixels = test.images.flatten(1)
    rows = {}
    for name in NETWORKS:
        runs = replicates(name, profile)
        if len(runs) < 2:
            continue
        for r in runs:
            phi = units.activations(trained_network(name, profile, replicate=r).model, test.images)
            summary = units.unit_vs_random(phi, test.labels, pixels, TOP_K, seed).summary
            rows[(name, r)] = _verdict(summary.loc[score])
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index = frame.index.set_names(["network", "replicate"])
    return frame


def check_verdicts(found: pd.DataFrame, profile: Profile) -> None:
    """At the paper's scale, each network's verdict (on every replicate, for a frame of
    :func:`replicate_verdicts`) must be one our full runs recorded."""
    if profile.paper_scale:
        networks = found.index.get_level_values(0)
        allowed = [verdict in EXPECTED_AT_PAPER_SCALE[name] for name, verdict in zip(networks, found["more coherent"])]
        assert all(allowed), found


def check_control(table: pd.DataFrame) -> pd.Series:
    """The label purity must tell the trained network's random directions from the untrained one's
    on every network (p < :data:`ALPHA`). Returns those p-values."""
    control = table.xs("untrained", level="weights")["p, trained vs untrained random"]
    purity = control.xs("label purity", level="score")
    assert (purity < ALPHA).all(), "the label purity must tell trained random directions from untrained ones"
    return control.unstack("score")


def imagenet_source() -> str:
    """Where Figures 3-4's images come from: ``$INTRIGUING_IMAGENET_DIR``, or foolbox's 20 samples."""
    folder = os.environ.get(IMAGENET_DIR_VAR)
    return f"the folder {folder}" if folder else "the 20 ImageNet samples shipped with foolbox"


def imagenet_rows(kind: str, count: int = 2, shown: int = 4) -> Figure:
    """Figures 3-4's pipeline: the top ``shown`` images along ``count`` units or random directions of
    EfficientNet-Lite0's penultimate layer (1280 features), with their ImageNet class indices."""
    folder = os.environ.get(IMAGENET_DIR_VAR)
    pictures = image_folder(folder, limit=IMAGENET_FOLDER_LIMIT) if folder else imagenet_samples()
    phi = units.activations(efficientnet_lite0(), pictures.images, batch_size=20)
    directions = {"unit": units.unit_directions(phi.shape[1])[:count],
                  "random direction": units.random_directions(phi.shape[1], count, seed=0)}
    if kind not in directions:
        raise ValueError(f"unknown kind {kind!r}; choose one of {sorted(directions)}")
    top = units.top_images(phi, directions[kind], shown).flatten()
    return plots.image_grid(pictures.images[top], [str(int(label)) for label in pictures.labels[top]], ncols=shown,
                            size=1.6)


def decide_claims(found: pd.DataFrame, per_replicate: pd.DataFrame) -> pd.DataFrame:
    """Decide :data:`CLAIMS` from :func:`verdicts` (one row per network) and :func:`replicate_verdicts`
    (every replicate of the replicated networks, which then stand for those networks).

    Returns:
        The claims table of :func:`intriguing.paper.claims_table`.
    """
    replicated = set(per_replicate.index.get_level_values(0)) if len(per_replicate) else set()
    rows = {name: row for name, row in found.iterrows() if name not in replicated}
    rows |= {f"{name}, replicate {r}": row for (name, r), row in per_replicate.iterrows()}
    cases = {case: row["more coherent"] != "units" for case, row in rows.items()}
    units_win = [f"{case} ({row['mean, units']:.2f} vs {row['mean, random']:.2f}, p = {row['p-value']:.1e})"
                 for case, row in rows.items() if not cases[case]]
    measurement = (f"units more label-pure at α = {ALPHA:g} in {len(units_win)} of {len(cases)} networks and "
                   f"replicates" + (": " + "; ".join(units_win) if units_win else ""))
    return paper.claims_table([paper.decide("units-not-special", cases, measurement)])
