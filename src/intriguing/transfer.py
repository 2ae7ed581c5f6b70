"""Do adversarial examples generalise? The error matrices of §4.2 (Tables 2 and 4) and their measures.

A *distorted set* is a labelled image set made from originals: adversarial examples for one
network, the same amplified, or Gaussian noise. :func:`error_matrix` feeds every set to every
network, rows × columns as in the paper, with each set's average RMS distortion beside it.
:func:`noise_margins`, :func:`amplification_gain` and :func:`training_set_gap` measure the
paper's claims on such a matrix; they are told which row is what, never parse row names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor, nn

from .attacks import rms_distortion
from .data import Split, check_images
from .evaluate import error_rate

__all__ = ["AMPLIFIED_DISTORTION", "DISTORTION", "MARGIN_SES", "DistortedSet", "amplification_gain", "amplify",
           "below_noise", "error_matrix", "gaussian_noise", "margin_standard_error", "noise_margins", "noise_set",
           "perturbation_cosines", "random_box_directions", "target_choice_matrix", "target_choice_transfer", "training_set_gap"]

DISTORTION = "Av. distortion"
"""The error matrix's last column: each set's mean RMS distortion."""
AMPLIFIED_DISTORTION = 0.1
"""Table 4's amplified sets' average RMS distortion ("amplified to stddev=0.1")."""


def gaussian_noise(images: Tensor, stddev: float, seed: int = 0, clip: bool = False) -> Tensor:
    """Images plus seeded Gaussian noise of the given stddev. (N, ...) -> (N, ...).

    Unclipped by default, as the paper's controls evidently were: Table 2 lists the noise's
    stddev as its average distortion, which only unclipped noise has (the blind-spots chapter
    measures Figure 7's accuracy under both).
    """
    if not stddev >= 0:
        raise ValueError(f"stddev must be non-negative, got {stddev}")
    gen = torch.Generator().manual_seed(seed)
    noisy = images + stddev * torch.randn(images.shape, generator=gen)
    return noisy.clamp(0, 1) if clip else noisy


@dataclass(frozen=True)
class DistortedSet:
    """Labelled images distorted from originals.

    Attributes:
        images: (N, 1, 28, 28); outside [0, 1] only where ``in_box`` is False.
        labels: (N,) the originals' true labels.
        distortion: the mean RMS distortion from the originals.
        in_box: whether the pixels lie in [0, 1] (unclipped noise and amplified sets may not).
    """

    images: Tensor
    labels: Tensor
    distortion: float
    in_box: bool = True

    @classmethod
    def from_images(cls, distorted: Tensor, originals: Tensor, labels: Tensor) -> DistortedSet:
        """The set of ``distorted`` (N, 1, 28, 28), measured against ``originals`` of the same shape."""
        if distorted.shape != originals.shape:
            raise ValueError(f"distorted and original images differ in shape: "
                             f"{tuple(distorted.shape)} and {tuple(originals.shape)}")
        if labels.shape != (len(originals),):
            raise ValueError(f"labels must have shape ({len(originals)},), got {tuple(labels.shape)}")
        check_images(originals, "originals")
        check_images(distorted, "distorted images", in_box=False)
        in_box = bool(distorted.min() >= 0 and distorted.max() <= 1)
        return cls(distorted, labels, rms_distortion(distorted, originals).mean().item(), in_box)


def noise_set(originals: Tensor, labels: Tensor, stddev: float, seed: int = 0) -> DistortedSet:
    """The paper's control: the originals plus unclipped Gaussian noise of ``stddev`` (seeded)."""
    return DistortedSet.from_images(gaussian_noise(originals, stddev, seed), originals, labels)


def amplify(originals: Tensor, adversarial: Tensor, distortion: float = AMPLIFIED_DISTORTION,
            per_example: bool = False) -> Tensor:
    """Table 4's amplified examples: the perturbations x' − x scaled up to an average RMS ``distortion``.

    The paper writes x + 0.1·(x' − x)/‖x' − x‖₂, whose RMS distortion would be 0.1/28, and labels the
    rows "amplified to stddev=0.1". By default every perturbation of the set is multiplied by one
    factor, chosen so that the set's average RMS distortion is ``distortion``: each example moves
    further along its own adversarial direction. ``per_example`` instead rescales each perturbation
    to RMS ``distortion`` (the formula's per-example normalisation), which *shrinks* the
    perturbations already larger than that; an image with x' = x (classified as its target before
    any search) then stays as it is. Neither is clipped to the box, so the distortion is exact.

    Args:
        originals, adversarial: (N, 1, 28, 28) in [0, 1].
        distortion: the average (default) or every example's (``per_example``) RMS distortion.
        per_example: normalise each perturbation rather than the set's average.

    Returns:
        (N, 1, 28, 28), possibly outside [0, 1].
    """
    check_images(originals, "originals")
    check_images(adversarial, "adversarial images")
    if originals.shape != adversarial.shape:
        raise ValueError(f"shapes differ: {tuple(originals.shape)} and {tuple(adversarial.shape)}")
    rms = rms_distortion(adversarial, originals)
    if rms.max() == 0:
        raise ValueError("every adversarial image equals its original: there is no perturbation to amplify")
    if per_example:
        scale = torch.where(rms > 0, distortion / rms.clamp_min(1e-12), torch.zeros_like(rms))
    else:
        scale = torch.full_like(rms, distortion / rms.mean().item())
    return originals + (adversarial - originals) * scale.view(-1, 1, 1, 1)


def random_box_directions(originals: Tensor, seed: int = 0) -> Tensor:
    """Seeded random directions that the pixel box allows: Gaussian, except that a pixel at 0 may only
    grow and a pixel at 1 only shrink, as every adversarial perturbation found in the box must. The
    chance level for :func:`perturbation_cosines`: two perturbations of a mostly black image share
    the sign of their black pixels whatever their network.

    Args:
        originals: (N, 1, 28, 28) in [0, 1].
        seed: the generator's seed.

    Returns:
        (N, 1, 28, 28) directions (not images: not in [0, 1]).
    """
    check_images(originals, "originals")
    direction = torch.randn(originals.shape, generator=torch.Generator().manual_seed(seed))
    direction = torch.where(originals <= 0, direction.abs(), direction)
    return torch.where(originals >= 1, -direction.abs(), direction)


def perturbation_cosines(originals: Tensor, first: Tensor, second: Tensor) -> Tensor:
    """The cosine between two distortions of the same images, image by image: how far two networks'
    adversarial examples (or an example and a random direction) move each image the same way.

    Args:
        originals: (N, 1, 28, 28) in [0, 1].
        first, second: (N, 1, 28, 28) distorted versions of ``originals`` (any finite values).

    Returns:
        (N,) cosines in [-1, 1]; NaN where either distortion is zero (an image left as it was has no
        direction).
    """
    check_images(originals, "originals")
    for name, distorted in (("first", first), ("second", second)):
        check_images(distorted, f"{name} distorted images", in_box=False)
        if distorted.shape != originals.shape:
            raise ValueError(f"{name} distorted images and originals differ in shape: "
                             f"{tuple(distorted.shape)} and {tuple(originals.shape)}")
    u = (first - originals).flatten(1).double()
    v = (second - originals).flatten(1).double()
    norms = u.norm(dim=1) * v.norm(dim=1)
    cosine = (u * v).sum(1) / norms.clamp_min(torch.finfo(torch.float64).tiny)
    return torch.where(norms > 0, cosine.clamp(-1, 1), torch.full_like(cosine, float("nan")))


def error_matrix(networks: Mapping[str, nn.Module], sets: Mapping[str, DistortedSet]) -> pd.DataFrame:
    """Error (%) of every network (columns) on every distorted set (rows), and each set's distortion.

    Returns:
        Rows named as ``sets``, columns named as ``networks`` and a last ``Av. distortion`` column.
    """
    rows = {}
    for set_name, data in sets.items():
        labelled = Split(data.images, data.labels)
        rows[set_name] = {net_name: 100 * error_rate(net, labelled, in_box=data.in_box)
                          for net_name, net in networks.items()}
        rows[set_name][DISTORTION] = data.distortion
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("set")


def _weakest_noise_at_least(matrix: pd.DataFrame, noise_rows: Sequence[str], distortion: float) -> str | None:
    noise = matrix.loc[list(noise_rows), DISTORTION].sort_values()
    stronger = noise[noise >= distortion]
    return None if stronger.empty else str(stronger.index[0])


def noise_margins(matrix: pd.DataFrame, made_for: Mapping[str, str], noise_rows: Sequence[str]) -> pd.DataFrame:
    """How far each adversarial set, fed to another network, beats Gaussian noise at least as strong.

    Each adversarial row is compared, in every column but its own network's, with the weakest noise
    row whose average distortion is at least the set's own.

    Args:
        matrix: an :func:`error_matrix`.
        made_for: adversarial row -> the network (column) it was made for.
        noise_rows: the rows of Gaussian noise.

    Returns:
        One row per (set, network): the set's error, the noise row compared with, its error, and
        ``margin`` (the set's error minus the noise's, in percentage points).

    Raises:
        ValueError: some adversarial set is more distorted than every noise row.
    """
    networks = [c for c in matrix.columns if c != DISTORTION]
    rows = []
    for set_name, own in made_for.items():
        distortion = matrix.loc[set_name, DISTORTION]
        noise = _weakest_noise_at_least(matrix, noise_rows, distortion)
        if noise is None:
            raise ValueError(f"{set_name!r} (distortion {distortion:.3g}) is more distorted than every noise row")
        for net in networks:
            if net == own:
                continue
            error, noise_error = matrix.loc[set_name, net], matrix.loc[noise, net]
            rows.append({"set": set_name, "network": net, "error": error, "noise": noise,
                         "noise error": noise_error, "margin": error - noise_error})
    return pd.DataFrame(rows).set_index(["set", "network"])


def margin_standard_error(found: pd.DataFrame, images: int) -> pd.Series:
    """An upper bound on each margin's sampling standard error (pp) over ``images`` images: √((e(100 − e) +
    f(100 − f)) / n) for the set's error e and the noise's f (%), the two measured on the same images, so
    that their positive correlation only lowers it.

    Args:
        found: a :func:`noise_margins` frame.
        images: how many images each set holds.
    """
    if images < 1:
        raise ValueError(f"a set needs at least one image, got {images}")
    e, f = found["error"], found["noise error"]
    return ((e * (100 - e) + f * (100 - f)) / images) ** 0.5


MARGIN_SES = 2.0
"""How many of its sampling standard errors a margin may fall below 0 in :func:`below_noise`."""


def below_noise(found: pd.DataFrame, images: int, ses: float = MARGIN_SES) -> pd.DataFrame:
    """The margins of a :func:`noise_margins` frame that fall below 0 by more than ``ses`` of their sampling
    standard errors (:func:`margin_standard_error`): sets that do worse than noise of their size by more
    than sampling noise over ``images`` images explains. Empty when there is none."""
    return found[found["margin"] <= -ses * margin_standard_error(found, images)]


def amplification_gain(matrix: pd.DataFrame, rows: Mapping[str, tuple[str, str]]) -> pd.DataFrame:
    """Amplified rows minus their plain adversarial rows (percentage points), per network fed them.

    Args:
        matrix: an :func:`error_matrix`.
        rows: network the sets were made for -> (its plain row, its amplified row).

    Returns:
        One row per network of ``rows`` ("made for"), one column per network fed the sets.
    """
    networks = [c for c in matrix.columns if c != DISTORTION]
    plain = [p for p, _ in rows.values()]
    amplified = [a for _, a in rows.values()]
    gain = matrix.loc[amplified, networks].to_numpy() - matrix.loc[plain, networks].to_numpy()
    return pd.DataFrame(gain, index=pd.Index(list(rows), name="made for"), columns=networks)


def training_set_gap(matrix: pd.DataFrame, rows: Mapping[str, str], same: tuple[str, str],
                     other: str) -> pd.Series:
    """For the sets made for each network of ``same`` (two networks trained on one set), the error of
    the other network of ``same`` minus that of ``other`` (trained on a disjoint set), in percentage points.

    Args:
        matrix: an :func:`error_matrix`.
        rows: network -> the row of the set made for it.
        same: the two networks that share a training set.
        other: the network trained on another set.

    Returns:
        made for -> the gap; positive values say that adversarial examples transfer more within a
        training set than across.
    """
    gap = {made_for: matrix.loc[rows[made_for], partner] - matrix.loc[rows[made_for], other]
           for made_for, partner in (same, same[::-1])}
    return pd.Series(gap, name="same − other training set (pp)").rename_axis("made for")


def target_choice_matrix(networks: Mapping[str, nn.Module], sets: Mapping[str, Mapping[str, DistortedSet]],
                         noise: Mapping[str, DistortedSet]) -> pd.DataFrame:
    """One :func:`error_matrix` per target choice, and one of the noise sets, stacked.

    Args:
        networks: name -> network, the columns.
        sets: target choice -> the adversarial sets made that way (the same rows for every choice).
        noise: noise rows on the same originals.

    Returns:
        Rows (targets, set): each choice's sets, then ``"noise"`` and its rows.
    """
    frames = {choice: error_matrix(networks, made) for choice, made in sets.items()}
    frames["noise"] = error_matrix(networks, noise)
    return pd.concat(frames, names=["targets"])


def target_choice_transfer(tables: Mapping[str, pd.DataFrame], noise: pd.DataFrame, made_for: Mapping[str, str],
                           noise_rows: Sequence[str]) -> pd.DataFrame:
    """How each way of choosing the target changes transfer: for every adversarial set, the mean error
    (%) it induces on the networks it was not made for, the mean margin over the weakest noise at least
    as strong (percentage points; see :func:`noise_margins`), on how many of those networks it beats
    that noise, and its average distortion.

    Args:
        tables: target choice (e.g. ``"random target"``) -> an :func:`error_matrix` of adversarial sets
            made on the same originals.
        noise: an :func:`error_matrix` of Gaussian noise on those originals, rows ``noise_rows``.
        made_for: adversarial row -> the network it was made for (the same rows in every table).

    Returns:
        One row per adversarial set; four columns per target choice, named ``"<choice>: <measure>"``.
    """
    rows: dict[str, dict[str, float]] = {name: {} for name in made_for}
    for choice, table in tables.items():
        found = noise_margins(pd.concat([table, noise]), made_for, noise_rows)
        for name in made_for:
            rows[name][f"{choice}: error on the others (%)"] = found.loc[name, "error"].mean()
            rows[name][f"{choice}: margin over noise (pp)"] = found.loc[name, "margin"].mean()
            rows[name][f"{choice}: beats noise on"] = int((found.loc[name, "margin"] > 0).sum())
            rows[name][f"{choice}: distortion"] = table.loc[name, DISTORTION]
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("set")
