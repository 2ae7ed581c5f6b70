"""Do adversarial examples generalise? The error matrices of §4.2 (Tables 2 and 4) and their checks.

A *distorted set* is a labelled image set made from originals: adversarial examples for one
network, the same amplified, or Gaussian noise. :func:`error_matrix` feeds every set to every
network, rows × columns as in the paper, with each set's average RMS distortion beside it.
:func:`table2`, :func:`table3` and :func:`table4` build the paper's three tables from the cached
adversarial sets of :func:`intriguing.experiments.adversarial_set`; :func:`noise_margins`,
:func:`amplification_gain` and :func:`training_set_gap` measure the claims the chapters check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import pandas as pd
import torch
from torch import Tensor, nn

from . import paper
from .attacks import rms_distortion
from .data import Split, check_images
from .evaluate import error_rate
from .experiments import adversarial_set, attacked_images, gaussian_noise, table3_errors
from .profiles import Profile, get_profile
from .train import train_network

__all__ = ["DistortedSet", "adversarial_sets", "amplification_gain", "amplify", "error_matrix", "noise_set",
           "noise_margins", "table2", "table3", "table4", "training_set_gap"]

DISTORTION = "Av. distortion"
TABLE2_NOISE = (0.1, 0.3)
TABLE4_NOISE = (0.06, 0.1)
AMPLIFIED_DISTORTION = 0.1


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
    def from_images(cls, distorted: Tensor, originals: Tensor, labels: Tensor) -> "DistortedSet":
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


def adversarial_sets(networks: list[str], split: str, profile: Profile) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """The cached adversarial images of each network, on the profile's attacked images of ``split``.

    Returns:
        The originals (N, 1, 28, 28), their labels (N,), and network -> adversarial (N, 1, 28, 28).

    Raises:
        RuntimeError: an attack failed on some image, so the set is not wholly adversarial.
    """
    originals = attacked_images(split, profile)
    adversarial = {}
    for name in networks:
        _, result = adversarial_set(name, split, profile)
        if not result.success.all():
            raise RuntimeError(f"the attack on {name} failed on {int((~result.success).sum())} images")
        adversarial[name] = result.adversarial
    return originals.images, originals.labels, adversarial


def _networks(names: list[str], profile: Profile) -> dict[str, nn.Module]:
    return {name: train_network(name, profile).model for name in names}


def table2(profile: Profile | str | None = None) -> pd.DataFrame:
    """Table 2: each Table 1 network's adversarial training images, and Gaussian noise at stddev
    0.1 and 0.3, fed to all six networks. Rows and columns as :data:`intriguing.paper.TABLE2`."""
    profile = get_profile(profile)
    names = list(paper.TABLE1.index)
    originals, labels, adversarial = adversarial_sets(names, "train", profile)
    sets = {name: DistortedSet.from_images(adversarial[name], originals, labels) for name in names}
    for i, stddev in enumerate(TABLE2_NOISE):
        sets[f"Gaussian noise, stddev={stddev:g}"] = noise_set(originals, labels, stddev, seed=i)
    return error_matrix(_networks(names, profile), sets)


def table3(profile: Profile | str | None = None) -> pd.DataFrame:
    """Table 3: M1, M1' and M2's errors (%) on P1, P2 and the test set, and the average distortion of
    their adversarial test images (random targets)."""
    profile = get_profile(profile)
    errors = table3_errors(profile)
    distortion = {name: adversarial_set(name, "test", profile)[1].distortion.mean().item() for name in errors.index}
    return errors.assign(**{"Min Av. Distortion": pd.Series(distortion)})


def table4(profile: Profile | str | None = None, per_example: bool = False) -> pd.DataFrame:
    """Table 4: the adversarial test images of M1, M1' and M2, the same amplified to an average RMS
    distortion of 0.1 (``per_example`` as in :func:`amplify`), and Gaussian noise at stddev 0.06 and
    0.1, fed to the three networks. Rows and columns as :data:`intriguing.paper.TABLE4`."""
    profile = get_profile(profile)
    names = list(paper.TABLE3.index)
    originals, labels, adversarial = adversarial_sets(names, "test", profile)
    sets = {f"Distorted for {name}": DistortedSet.from_images(adversarial[name], originals, labels)
            for name in names}
    sets[f"Gaussian noise, stddev={TABLE4_NOISE[0]:g}"] = noise_set(originals, labels, TABLE4_NOISE[0], seed=0)
    for name in names:
        sets[f"Distorted for {name}, amplified"] = DistortedSet.from_images(
            amplify(originals, adversarial[name], per_example=per_example), originals, labels)
    sets[f"Gaussian noise, stddev={TABLE4_NOISE[1]:g}"] = noise_set(originals, labels, TABLE4_NOISE[1], seed=1)
    return error_matrix(_networks(names, profile), sets)


def _noise_rows(matrix: pd.DataFrame) -> pd.Series:
    noise = [row for row in matrix.index if row.startswith("Gaussian noise")]
    return matrix.loc[noise, DISTORTION].sort_values()


def noise_margins(matrix: pd.DataFrame) -> pd.DataFrame:
    """How far each adversarial set, fed to another network, beats Gaussian noise at least as strong.

    Each adversarial row is compared, in every column but its own network's, with the weakest noise
    row whose average distortion is at least the set's own.

    Args:
        matrix: an :func:`error_matrix` whose noise rows are named ``"Gaussian noise…"`` and whose
            other rows are named after (or start with "Distorted for ") a column's network.

    Returns:
        One row per (set, network): the set's error, the noise row compared with, its error, and
        ``margin`` (the set's error minus the noise's, in percentage points).

    Raises:
        ValueError: some adversarial set is more distorted than every noise row.
    """
    noise = _noise_rows(matrix)
    networks = [c for c in matrix.columns if c != DISTORTION]
    rows = []
    for set_name in matrix.index.drop(noise.index):
        stronger = noise[noise >= matrix.loc[set_name, DISTORTION]]
        if stronger.empty:
            raise ValueError(f"{set_name!r} (distortion {matrix.loc[set_name, DISTORTION]:.3g}) is more "
                             f"distorted than every noise row")
        own = set_name.removeprefix("Distorted for ").split(",")[0]
        for net in networks:
            if net == own:
                continue
            error, noise_error = matrix.loc[set_name, net], matrix.loc[stronger.index[0], net]
            rows.append({"set": set_name, "network": net, "error": error, "noise": stronger.index[0],
                         "noise error": noise_error, "margin": error - noise_error})
    return pd.DataFrame(rows).set_index(["set", "network"])


def amplification_gain(table: pd.DataFrame) -> pd.DataFrame:
    """Table 4's amplified rows minus its plain adversarial rows (percentage points), per network.

    Returns:
        One row per network whose set was amplified, one column per network fed the sets.
    """
    amplified = [row for row in table.index if row.endswith(", amplified")]
    plain = [row.removesuffix(", amplified") for row in amplified]
    networks = [c for c in table.columns if c != DISTORTION]
    gain = table.loc[amplified, networks].to_numpy() - table.loc[plain, networks].to_numpy()
    return pd.DataFrame(gain, index=pd.Index([r.removeprefix("Distorted for ") for r in plain], name="made for"),
                        columns=networks)


def training_set_gap(table: pd.DataFrame, same: tuple[str, str] = ("M1", "M1'"), other: str = "M2",
                     amplified: bool = False) -> pd.Series:
    """For adversarial sets made for each network of ``same`` (trained on one set), the error of the
    other network of ``same`` minus that of ``other`` (trained on a disjoint set), in percentage points.

    Positive values say that adversarial examples transfer more within a training set than across.
    """
    suffix = ", amplified" if amplified else ""
    gap = {}
    for made_for, partner in (same, same[::-1]):
        row = table.loc[f"Distorted for {made_for}{suffix}"]
        gap[made_for] = row[partner] - row[other]
    return pd.Series(gap, name="same − other training set (pp)").rename_axis("made for")
