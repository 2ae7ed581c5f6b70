"""The cross-model chapter (§4.2, Table 2): every network's adversarial training set fed to every network."""

from __future__ import annotations

import pandas as pd

from .. import paper
from ..artifacts import TARGET_CHOICES, adversarial_sets, attacked_images, random_and_nearest, trained_models
from ..models import NETWORKS as REGISTRY
from ..paper import Tolerance
from ..profiles import Profile, get_profile
from ..transfer import (
    DISTORTION,
    DistortedSet,
    below_noise,
    error_matrix,
    noise_margins,
    noise_set,
    target_choice_matrix,
    target_choice_transfer,
)

__all__ = ["CLAIMS", "NETWORKS", "NOISE_ROWS", "check_diagonal", "check_margins", "compare_table2",
           "cross_family_margins", "decide_claims", "difference", "margin_summary", "margins",
           "nearest_target_table2", "nearest_target_transfer", "set_size", "table2"]

NETWORKS = list(paper.TABLE1.index)
NOISE = (0.1, 0.3)
NOISE_ROWS = [f"Gaussian noise, stddev={stddev:g}" for stddev in NOISE]
CLAIMS = ("cross-model-transfer", "autoencoder-most-resilient")
"""The claims of :data:`intriguing.paper.CLAIMS` this chapter decides."""
AUTOENCODER = "AE400-10"


def table2(profile: Profile | str | None = None) -> pd.DataFrame:
    """Table 2: each Table 1 network's adversarial training images, and Gaussian noise at stddev 0.1 and
    0.3, fed to all six networks. Rows and columns as :data:`intriguing.paper.TABLE2`."""
    profile = get_profile(profile)
    originals, adversarial = adversarial_sets(NETWORKS, "train", profile)
    sets = {name: DistortedSet.from_images(adversarial[name], originals.images, originals.labels)
            for name in NETWORKS}
    for seed, (row, stddev) in enumerate(zip(NOISE_ROWS, NOISE)):
        sets[row] = noise_set(originals.images, originals.labels, stddev, seed=seed)
    return error_matrix(trained_models(NETWORKS, profile), sets)


def set_size(profile: Profile | str | None = None) -> int:
    """How many images each set of the profile's Table 2 holds."""
    return len(attacked_images("train", profile))


def compare_table2(table: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Our Table 2 beside the paper's: errors within ``transfer_tolerance_pp``, distortions within
    ``distortion_tolerance`` (relative)."""
    tolerance = {col: Tolerance(profile.transfer_tolerance_pp) for col in NETWORKS}
    tolerance[DISTORTION] = Tolerance(profile.distortion_tolerance, relative=True)
    return paper.compare_with_paper(table, "Table 2", tolerance, profile=profile.name)


def difference(table: pd.DataFrame) -> pd.DataFrame:
    """Ours − the paper's errors (percentage points), networks' columns only."""
    return (table - paper.TABLE2)[NETWORKS]


def check_diagonal(table: pd.DataFrame) -> None:
    """A set made for a network is wholly misclassified by it."""
    diagonal = {name: table.loc[name, name] for name in NETWORKS}
    assert all(value == 100 for value in diagonal.values()), diagonal


def margins(table: pd.DataFrame) -> pd.DataFrame:
    """Each adversarial set's error minus that of the weakest noise at least as strong, off the diagonal."""
    return noise_margins(table, {name: name for name in NETWORKS}, NOISE_ROWS)


def check_margins(found: pd.DataFrame, images: int) -> None:
    """No adversarial set does worse than its noise control, on any other network, by more than sampling
    noise over ``images`` images explains (:func:`intriguing.transfer.below_noise`). Whether every margin is
    positive, as the paper's claim needs, is decided and recorded by :func:`decide_claims`."""
    worse = below_noise(found, images)
    assert worse.empty, worse


def margin_summary(found: pd.DataFrame) -> pd.DataFrame:
    """Per network: the mean margin of the set made for it over the other networks, and the mean margin
    of the other networks' sets when fed to it (percentage points)."""
    return pd.DataFrame({"its set, fed to the others": found["margin"].groupby(level="set").mean(),
                         "the others' sets, fed to it": found["margin"].groupby(level="network").mean()}
                        ).reindex(NETWORKS).rename_axis("network")


def cross_family_margins(found: pd.DataFrame) -> pd.DataFrame:
    """The margins between networks of different families (linear softmax, sigmoid, autoencoder)."""
    family = {name: REGISTRY[name].family for name in NETWORKS}
    keep = [family[s] != family[n] for s, n in found.index]
    return found[keep]


RANDOM, NEAREST = TARGET_CHOICES


def nearest_target_table2(profile: Profile | str | None = None) -> pd.DataFrame:
    """Table 2 on the first ``profile.min_target_examples`` attacked training images, twice: each network's
    adversarial images towards their random target, and towards the nearest of the nine wrong labels
    (:func:`intriguing.artifacts.random_and_nearest`), with Gaussian noise of stddev 0.1 and 0.3 on the same
    images.

    Returns:
        Rows (kind, set) for kind in (``"random target"``, ``"nearest target"``, ``"noise"``), columns
        as :func:`table2`.
    """
    profile = get_profile(profile)
    sets: dict[str, dict[str, DistortedSet]] = {choice: {} for choice in TARGET_CHOICES}
    for name in NETWORKS:
        images, results = random_and_nearest(name, "train", profile)
        for choice, result in results.items():
            sets[choice][name] = DistortedSet.from_images(result.adversarial, images.images, images.labels)
    noise = {row: noise_set(images.images, images.labels, stddev, seed=seed)
             for seed, (row, stddev) in enumerate(zip(NOISE_ROWS, NOISE))}
    return target_choice_matrix(trained_models(NETWORKS, profile), sets, noise)


def nearest_target_transfer(table: pd.DataFrame) -> pd.DataFrame:
    """Random against nearest targets, per network the sets were made for: the mean off-diagonal
    error (%), the mean margin over the weakest noise at least as strong (percentage points), how many
    of the five other networks it beats that noise on, and the average distortion
    (:func:`intriguing.transfer.target_choice_transfer`)."""
    tables = {choice: table.loc[choice] for choice in TARGET_CHOICES}
    found = target_choice_transfer(tables, table.loc["noise"], {name: name for name in NETWORKS}, NOISE_ROWS)
    return found.rename_axis("made for")


def decide_claims(table: pd.DataFrame, found: pd.DataFrame) -> pd.DataFrame:
    """Decide :data:`CLAIMS` from :func:`table2` and its :func:`margins`.

    Returns:
        The claims table of :func:`intriguing.paper.claims_table`.
    """
    margin = found["margin"]
    transfer = {f"{made_for}'s set on {net}": bool(m > 0) for (made_for, net), m in margin.items()}
    transfer_row = paper.decide(
        "cross-model-transfer", transfer,
        f"margin over noise positive in {sum(transfer.values())} of {len(transfer)} off-diagonal cells "
        f"({margin.min():.1f} to {margin.max():.1f} pp)")
    off_diagonal = {net: table.loc[[n for n in NETWORKS if n != net], net].mean() for net in NETWORKS}
    least = min(off_diagonal, key=off_diagonal.__getitem__)
    ae_margins = margin.xs(AUTOENCODER, level="network")
    resilient = {"lowest mean error on the others' sets": least == AUTOENCODER,
                 "margin over noise positive on every other set": bool((ae_margins > 0).all())}
    ranked = ", ".join(f"{net} {off_diagonal[net]:.1f} %" for net in sorted(off_diagonal, key=off_diagonal.__getitem__))
    resilient_row = paper.decide(
        "autoencoder-most-resilient", resilient,
        f"mean error on the five other networks' sets: {ranked}; {AUTOENCODER}'s margins over noise "
        f"{ae_margins.min():.1f} to {ae_margins.max():.1f} pp")
    return paper.claims_table([transfer_row, resilient_row])
