"""The cross-model chapter (§4.2, Table 2): every network's adversarial training set fed to every network; and §4.3's
reading that unstable perturbations belong to the architecture, not the weights, probed with replicates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from .. import cache, paper
from ..artifacts import (
    TARGET_CHOICES,
    adversarial_set,
    adversarial_sets,
    attacked_images,
    random_and_nearest,
    replicates,
    result_key,
    trained_models,
    trained_network,
)
from ..data import Split
from ..evaluate import misclassified
from ..models import NETWORKS as REGISTRY
from ..paper import Tolerance
from ..profiles import Profile, get_profile
from ..spread import paired_ordering
from ..transfer import (
    AMPLIFIED_DISTORTION,
    DISTORTION,
    DistortedSet,
    amplify,
    below_noise,
    error_matrix,
    noise_margins,
    noise_set,
    perturbation_cosines,
    random_box_directions,
    target_choice_matrix,
    target_choice_transfer,
)

__all__ = ["ARCHITECTURE", "ArchitectureProbe", "CLAIMS", "HIGHER", "LEVEL", "LOWER", "NETWORKS", "NOISE_ROWS",
           "NOISE_SET", "OTHER_ARCHITECTURE", "PROBE_SEED", "RANDOM_DIRECTION", "architecture_cases",
           "architecture_cosines", "architecture_probe", "architecture_transfer", "check_diagonal", "check_margins",
           "closest_perturbation", "compare_table2", "cross_family_margins", "decide_architecture", "decide_claims",
           "difference", "margin_summary", "margins", "nearest_target_table2", "nearest_target_transfer", "set_size",
           "table2"]

NETWORKS = list(paper.TABLE1.index)
NOISE = (0.1, 0.3)
NOISE_ROWS = [f"Gaussian noise, stddev={stddev:g}" for stddev in NOISE]
CLAIMS = ("cross-model-transfer", "autoencoder-most-resilient", "instability-from-architecture")
"""The claims of :data:`intriguing.paper.CLAIMS` this chapter decides."""
AUTOENCODER = "AE400-10"


def table2(profile: Profile | str | None = None) -> pd.DataFrame:
    """Table 2: each Table 1 network's adversarial training images, and Gaussian noise at stddev 0.1 and
    0.3, fed to all six networks. Rows and columns as :data:`intriguing.paper.TABLE2`. Cached as a result derived
    from the six adversarial sets (:func:`intriguing.cache.cached`), so a reader who pulls this chapter downloads
    the table, not the sets."""
    profile = get_profile(profile)

    def compute() -> dict[str, Any]:
        originals, adversarial = adversarial_sets(NETWORKS, "train", profile)
        sets = {name: DistortedSet.from_images(adversarial[name], originals.images, originals.labels)
                for name in NETWORKS}
        for seed, (row, stddev) in enumerate(zip(NOISE_ROWS, NOISE)):
            sets[row] = noise_set(originals.images, originals.labels, stddev, seed=seed)
        table = error_matrix(trained_models(NETWORKS, profile), sets)
        return {"rows": list(table.index), "columns": list(table.columns),
                "values": torch.tensor(table.to_numpy(dtype=float))}

    key = {"table": "Table 2", "noise": list(NOISE), "train_subset": profile.train_subset,
           "sets": {name: result_key(name, profile, settings=profile.search, split="train",
                                     attack_examples=profile.attack_examples, target_seed=0) for name in NETWORKS}}
    found = cache.cached("attacks", "table2", key, compute, derived=True)
    return pd.DataFrame(found["values"].numpy(), index=pd.Index(found["rows"], name="set"), columns=found["columns"])


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


def decide_claims(table: pd.DataFrame, found: pd.DataFrame, probe: ArchitectureProbe) -> pd.DataFrame:
    """Decide :data:`CLAIMS` from :func:`table2`, its :func:`margins` and the :func:`architecture_probe`.

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
    return paper.claims_table([transfer_row, resilient_row, decide_architecture(probe)])


ARCHITECTURE = "N100-100-10"
"""The architecture whose replicates (other initial weights; the same images, weight decay and training) the
claim ``instability-from-architecture`` compares."""
OTHER_ARCHITECTURE = "N200-200-10"
"""Another architecture, trained on the same images with the same weight decay: the nearest the book has."""
PROBE_SEED = 0
"""The seed of the targets, of the Gaussian-noise control and of the random directions of the probe."""
LEVEL = 0.05
"""The level of the probe's paired tests."""
LOWER, HIGHER = "the claim's lower", "the claim's higher"
"""The columns of :func:`architecture_cases`: the means of the two sides of a case's ordering."""


@dataclass(frozen=True)
class ArchitectureProbe:
    """Same architecture with other weights, against another architecture, on the same images and targets.

    Attributes:
        fooled: one row per image; columns (set, network): whether the network misclassifies the image of that
            set, every set's perturbations rescaled to RMS ``distortion`` (the sets: each network's
            minimum-distortion examples, and Gaussian noise).
        cosines: one row per image; one column per pair of networks (and one network against a random
            direction): the cosine between their perturbations of the image (NaN where one is zero).
        distortion: the RMS distortion every perturbation was rescaled to.
        members: the networks, replicate 0 of :data:`ARCHITECTURE` first, then its other replicates, then
            :data:`OTHER_ARCHITECTURE`.
    """

    fooled: pd.DataFrame
    cosines: pd.DataFrame
    distortion: float
    members: tuple[str, ...]

    @property
    def reference(self) -> str:
        return self.members[0]

    @property
    def other_seeds(self) -> tuple[str, ...]:
        return self.members[1:-1]

    @property
    def other_architecture(self) -> str:
        return self.members[-1]


def _member(name: str, replicate: int) -> str:
    return f"{name} #{replicate}"


NOISE_SET = f"Gaussian noise, stddev={AMPLIFIED_DISTORTION:g}"
"""The probe's control set: the images with Gaussian noise of the probe's distortion."""
RANDOM_DIRECTION = "a random direction the box allows"
"""The probe's chance level for a cosine (:func:`intriguing.transfer.random_box_directions`)."""


def architecture_probe(profile: Profile | str | None = None) -> ArchitectureProbe:
    """Measure the claim ``instability-from-architecture`` (:data:`intriguing.paper.CLAIMS`).

    The first ``profile.min_target_examples`` attacked training images, each aimed at its random target
    (seed :data:`PROBE_SEED`), are attacked on every replicate of :data:`ARCHITECTURE` and on
    :data:`OTHER_ARCHITECTURE` (cached as adversarial sets); every perturbation is rescaled to RMS 0.1
    (:func:`intriguing.transfer.amplify`, per example) so that every comparison is at equal distortion.

    Returns:
        The :class:`ArchitectureProbe`.

    Raises:
        RuntimeError: an attack failed on some image.
    """
    profile = get_profile(profile)
    count = profile.min_target_examples
    images = attacked_images("train", profile, target_seed=PROBE_SEED).subset(slice(0, count))
    networks = [(ARCHITECTURE, r) for r in replicates(ARCHITECTURE, profile)] + [(OTHER_ARCHITECTURE, 0)]
    if len(networks) < 3:
        raise ValueError(f"the probe needs at least two replicates of {ARCHITECTURE}; the {profile.name} profile "
                         f"trains {len(networks) - 1}")
    adversarial, models = {}, {}
    for name, replicate in networks:
        member = _member(name, replicate)
        _, result = adversarial_set(name, "train", profile, target_seed=PROBE_SEED, examples=count,
                                    replicate=replicate)
        if not result.success.all():
            raise RuntimeError(f"the attack on {member} failed on {int((~result.success).sum())} images")
        adversarial[member] = result.adversarial
        models[member] = trained_network(name, profile, replicate=replicate).model
    originals, labels = images.images, images.labels
    sets = {member: amplify(originals, adv, AMPLIFIED_DISTORTION, per_example=True)
            for member, adv in adversarial.items()}
    sets[NOISE_SET] = noise_set(originals, labels, AMPLIFIED_DISTORTION, seed=PROBE_SEED).images
    fooled = pd.DataFrame({(set_name, member): misclassified(model, Split(distorted, labels), in_box=False).numpy()
                           for set_name, distorted in sets.items() for member, model in models.items()})
    fooled.columns.names = ["set", "network"]
    members = tuple(models)
    reference = members[0]
    random = originals + AMPLIFIED_DISTORTION * random_box_directions(originals, PROBE_SEED)
    partners = {member: adversarial[member] for member in members[1:]} | {RANDOM_DIRECTION: random}
    cosines = pd.DataFrame({f"{reference} · {partner}": perturbation_cosines(originals, adversarial[reference],
                                                                            distorted).numpy()
                            for partner, distorted in partners.items()})
    for frame in (fooled, cosines):
        frame.index.name = "image"
    return ArchitectureProbe(fooled, cosines, AMPLIFIED_DISTORTION, members)


def architecture_transfer(probe: ArchitectureProbe) -> pd.DataFrame:
    """The probe's error matrix (%): rows the sets at RMS ``probe.distortion``, columns the networks."""
    return (100 * probe.fooled.mean()).unstack(1).reindex(
        index=[*probe.members, NOISE_SET], columns=list(probe.members))


def architecture_cosines(probe: ArchitectureProbe) -> pd.DataFrame:
    """Per pair: how many images had both perturbations, the mean cosine, its standard error and the
    median."""
    cos = probe.cosines
    return pd.DataFrame({"images": cos.count(), "mean": cos.mean(), "se": cos.sem(), "median": cos.median()}
                        ).rename_axis("perturbations")


def closest_perturbation(probe: ArchitectureProbe) -> str:
    """Whose perturbations replicate #0's lie closest to on average (mean cosine): ``"another architecture's"``
    when the other architecture's beat every other seed's, ``"another seed's"`` when they beat none, else
    ``"either's"``."""
    cosine = architecture_cosines(probe)["mean"]
    seeds = cosine[[f"{probe.reference} · {seed}" for seed in probe.other_seeds]]
    other = cosine[f"{probe.reference} · {probe.other_architecture}"]
    return "another architecture's" if other > seeds.max() else "another seed's" if other < seeds.min() else "either's"


def _ordering(lower: pd.Series, higher: pd.Series) -> dict[str, float | int | str]:
    return paired_ordering(lower.astype(float), higher.astype(float), LEVEL, unit="images")


def architecture_cases(probe: ArchitectureProbe) -> pd.DataFrame:
    """The cases of the claim's rule (:data:`intriguing.paper.CLAIMS`), per other replicate.

    Returns:
        One row per case: the means of what the claim puts lower (:data:`LOWER`) and higher (:data:`HIGHER`)
        (a share fooled, or a cosine), the test,
        the ordering's verdict (:func:`intriguing.spread.paired_ordering`) and ``case``: True (holds),
        False (fails) or None (not resolved).
    """
    f, cos = probe.fooled, probe.cosines
    ref, other = probe.reference, probe.other_architecture
    rows = {}
    for seed in probe.other_seeds:
        architecture = {
            f"{ref}'s examples fool {seed} more often than {other}": (f[(ref, other)], f[(ref, seed)]),
            f"{seed} is fooled more often by {ref}'s examples than by {other}'s": (f[(other, seed)], f[(ref, seed)]),
            f"{ref}'s perturbations are closer to {seed}'s than to {other}'s": (cos[f"{ref} · {other}"],
                                                                                 cos[f"{ref} · {seed}"]),
        }
        for case, (lower, higher) in architecture.items():
            found = _ordering(lower, higher)
            rows[case] = {LOWER: lower.mean(), HIGHER: higher.mean(), "test": found["test"],
                          "ordering": found["verdict"], "case": paper.ordering_case(str(found["verdict"]))}
        lower, higher = f[(ref, seed)], f[(ref, ref)]
        found = _ordering(lower, higher)
        rows[f"{seed} is fooled by {ref}'s examples as often as {ref} is"] = {
            LOWER: lower.mean(), HIGHER: higher.mean(), "test": found["test"], "ordering": found["verdict"],
            "case": found["verdict"] != "holds"}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("case")


def decide_architecture(probe: ArchitectureProbe) -> dict[str, str]:
    """Decide ``instability-from-architecture`` from the probe's :func:`architecture_cases`."""
    cases = architecture_cases(probe)
    transfer = architecture_transfer(probe)
    cos = architecture_cosines(probe)["mean"]
    ref, other = probe.reference, probe.other_architecture
    seeds = ", ".join(f"{seed} {transfer.loc[ref, seed]:.1f} %" for seed in probe.other_seeds)
    measurement = (f"at RMS {probe.distortion:g}, {ref}'s examples fool itself {transfer.loc[ref, ref]:.1f} %, "
                   f"its other seeds {seeds}, {other} {transfer.loc[ref, other]:.1f} % (noise: "
                   f"{transfer.loc[NOISE_SET, ref]:.1f} %); mean cosine with {ref}'s perturbations: "
                   + ", ".join(f"{pair.split(' · ')[1]} {value:.3f}" for pair, value in cos.items())
                   + f"; {len(probe.fooled)} images")
    outcomes = {case: None if pd.isna(outcome) else bool(outcome) for case, outcome in cases["case"].items()}
    return paper.decide("instability-from-architecture", outcomes, measurement)
