"""The spectral chapter (§4.3, Table 5, Figure 5): frame bounds of every layer, and the ImageNet search."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from .. import paper, plots, spectral
from ..artifacts import cached, trained_network
from ..attacks import AttackResult, SearchSettings, min_distortion_attack, random_targets
from ..imagenet import ImageSet, alexnet, efficientnet_lite0, imagenet_samples
from ..models import NETWORKS
from ..profiles import Profile, get_profile

__all__ = ["CLAIMS", "CONVOLUTIONAL", "LOW_RESOLUTION", "MNIST_NETWORKS", "OSTRICH", "PAPERS_ALEXNET", "accuracy_on_samples",
           "alexnet_table", "bounds_by_kind", "check_figure5", "check_formula", "decide_claims", "efficientnet_table",
           "figure5", "figure5_factors", "figure5_figure", "figure5_rounding", "formula_vs_operator",
           "largest_bounds", "mnist_table"]

MNIST_NETWORKS = ["Conv", "N100-100-10"]
IMAGENET_CLASSES = 1000
CHECK_SIDE = 32  # the input side on which the formula is checked against the operator
POWER_STEPS = 500
LAYER_KINDS = r"_(conv_stem|expand_conv|depthwise_conv|project_conv|conv_head|fc)$"
CLAIMS = ("adversarial-near-every-image-imagenet", "first-layer-unstable")
"""The claims of :data:`intriguing.paper.CLAIMS` this chapter decides."""
PAPERS_ALEXNET = "AlexNet (the paper's Table 5)"
CONVOLUTIONAL = ("Conv", "EfficientNet-Lite0")
"""Our convolutional networks: §4.3's claim is about a convolutional network's first layer."""


def formula_vs_operator() -> pd.DataFrame:
    """The Fourier bound of EfficientNet-Lite0's stem and of a depthwise layer (batch norm folded) beside
    power iteration on the real ``conv2d``, circular- and zero-padded, on a 32×32 input."""
    net = efficientnet_lite0()
    rows = []
    for name, bn_name in [("_conv_stem", "_bn0"), ("_blocks.1._depthwise_conv", "_blocks.1._bn1")]:
        conv, bn = net.get_submodule(name), net.get_submodule(bn_name)
        assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
        w = spectral.fold_batchnorm(conv.weight, bn).double()
        stride, groups = conv.stride[0], conv.groups
        shape = (1, w.shape[1] * groups, CHECK_SIDE, CHECK_SIDE)
        rows.append({"layer": name, "Fourier bound": spectral.conv_frame_bounds(w, CHECK_SIDE, stride, groups).upper,
                     "power iteration, circular": spectral.power_iteration(
                         spectral.conv_operator(w, stride, groups, "circular"), shape, POWER_STEPS),
                     "power iteration, zero padding": spectral.power_iteration(
                         spectral.conv_operator(w, stride, groups, "zeros"), shape, POWER_STEPS)})
    return pd.DataFrame(rows).set_index("layer")


def check_formula(checks: pd.DataFrame) -> None:
    """Circular padding: power iteration within 0.5 % below the bound. Zero padding: never above it,
    and within 10 % of it."""
    bound = checks["Fourier bound"]
    assert (checks["power iteration, circular"] >= (1 - 5e-3) * bound).all(), checks
    assert (checks["power iteration, circular"] <= bound * (1 + 1e-6)).all(), checks
    assert (checks["power iteration, zero padding"] <= bound * (1 + 1e-6)).all(), checks
    assert (checks["power iteration, zero padding"] >= 0.9 * bound).all(), checks


def accuracy_on_samples() -> tuple[int, int]:
    """How many of the shipped ImageNet samples EfficientNet-Lite0 classifies correctly, of how many."""
    samples = imagenet_samples()
    with torch.no_grad():
        predicted = efficientnet_lite0()(samples.images).argmax(1)
    return int((predicted == samples.labels).sum()), len(samples)


def efficientnet_table() -> pd.DataFrame:
    """EfficientNet-Lite0's frame bounds, one row per layer in forward order, batch norms folded."""
    return spectral.frame_bound_table(efficientnet_lite0(), (3, 224, 224))


def bounds_by_kind(table: pd.DataFrame) -> pd.DataFrame:
    """EfficientNet-Lite0's upper bounds summarised per layer type (count, min, median, max)."""
    kind = table.index.to_series().str.extract(LAYER_KINDS)[0]
    return table.groupby(kind)["Upper bound"].agg(["count", "min", "median", "max"]).rename_axis("layer type")


def mnist_table(name: str, profile: Profile | str | None = None) -> pd.DataFrame:
    """The frame bounds of an MNIST network's layers."""
    return spectral.frame_bound_table(trained_network(name, profile).model, (1, 28, 28))


def largest_bounds(profile: Profile | str | None = None) -> pd.DataFrame:
    """Where in each network the largest upper bound sits: every MNIST network of the book,
    EfficientNet-Lite0, and the paper's AlexNet from Table 5 (a different network from all of ours).

    Returns:
        One row per network: its layers, the first layer's upper bound, the largest upper bound,
        the layer holding it and that layer's position (1: the first layer met by a forward pass),
        and whether the first layer holds it.
    """
    tables = {name: mnist_table(name, profile) for name in NETWORKS}
    tables["EfficientNet-Lite0"] = efficientnet_table()
    tables[PAPERS_ALEXNET] = paper.TABLE5
    rows = {}
    for name, table in tables.items():
        upper = table["Upper bound"].astype(float)
        position = list(upper.index).index(upper.idxmax()) + 1
        rows[name] = {"layers": len(upper), "first layer's upper bound": upper.iloc[0],
                      "largest upper bound": upper.max(), "in layer": upper.idxmax(), "position": position,
                      "largest in the first layer": position == 1}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("network")


def alexnet_table() -> tuple[pd.DataFrame | None, str]:
    """torchvision's AlexNet's bounds beside the paper's Table 5, where torchvision and its weights are
    present (nothing is downloaded); else None and the reason."""
    try:
        model = alexnet()
    except RuntimeError as reason:
        return None, str(reason)
    ours = spectral.frame_bound_table(model, (3, 224, 224))
    ours.index = paper.TABLE5.index
    side = pd.concat({"ours (torchvision's AlexNet)": ours[["Size", "Stride", "Lower bound", "Upper bound"]],
                      "paper": paper.TABLE5}, axis=1)
    return side, "computed"


def figure5(profile: Profile | str | None = None, target_seed: int = 0) -> tuple[ImageSet, AttackResult]:
    """Figure 5's analogue: D(x, l) on EfficientNet-Lite0 for the shipped ImageNet images, random wrong
    targets among the 1000 classes, with the profile's ``imagenet_search``, cached.

    Returns:
        The attacked :class:`intriguing.imagenet.ImageSet` (the first ``profile.imagenet_examples``
        samples) and the :class:`AttackResult`.
    """
    profile = get_profile(profile)
    samples = imagenet_samples()
    k = profile.imagenet_examples
    images = ImageSet(samples.images[:k], samples.labels[:k], samples.names[:k])
    targets = random_targets(images.labels, seed=target_seed, n_classes=IMAGENET_CLASSES)
    return images, _figure5_search(images, targets, profile.imagenet_search, profile, target_seed=target_seed)


OSTRICH = 9
"""The ImageNet class every image of the paper's Figure 5 was turned into ("ostrich, Struthio camelus")."""
LOW_RESOLUTION = 112
"""The side of the smaller input on which Figure 5's search is repeated (the network pools globally)."""
EIGHT_BIT = 255


def _figure5_search(images: ImageSet, targets: torch.Tensor, settings: SearchSettings, profile: Profile,
                    **selection: Any) -> AttackResult:
    """D(x, l) on EfficientNet-Lite0 for ``images`` towards ``targets``, cached under ``selection``."""
    def compute() -> dict[str, torch.Tensor]:
        return asdict(min_distortion_attack(efficientnet_lite0(), images.images, targets, labels=images.labels,
                                            settings=settings, batch_size=len(images)))

    return AttackResult(**cached("attacks-imagenet", "efficientnet-lite0", profile, compute, settings=settings,
                                 images=list(images.names), **selection))


def figure5_factors(profile: Profile | str | None = None, target_seed: int = 0) -> pd.DataFrame:
    """What moves Figure 5's average distortion: the chapter's search on the first
    ``profile.imagenet_factor_examples`` images, then the same images with one thing changed at a
    time: a finer search (``profile.imagenet_fine_search``), every image aimed at the paper's
    target class (:data:`OSTRICH`; images of that class left out), and the input at
    :data:`LOW_RESOLUTION` pixels a side instead of 224.

    Returns:
        One row per setting: the images attacked, the share that reached its target (%), the
        average RMS distortion of those that did, on the [0, 1] pixel scale, its ratio to the
        chapter's setting on the same images, and the RMS in 8-bit grey levels.
    """
    profile = get_profile(profile)
    k = min(profile.imagenet_factor_examples, profile.imagenet_examples)
    _, chapter_result = figure5(profile, target_seed)
    samples = imagenet_samples()
    full = ImageSet(samples.images[:k], samples.labels[:k], samples.names[:k])
    targets = random_targets(samples.labels[:profile.imagenet_examples], seed=target_seed,
                             n_classes=IMAGENET_CLASSES)[:k]
    keep = [i for i in range(k) if samples.labels[i] != OSTRICH]
    not_ostrich = ImageSet(full.images[keep], full.labels[keep], tuple(full.names[i] for i in keep))
    low = imagenet_samples(LOW_RESOLUTION)
    low = ImageSet(low.images[:k], low.labels[:k], low.names[:k])
    results = {
        "the chapter's search (random targets, 224 × 224)": (range(k), AttackResult(
            chapter_result.adversarial[:k], chapter_result.success[:k], chapter_result.distortion[:k],
            chapter_result.c[:k])),
        f"finer search ({profile.imagenet_fine_search.c_steps} c steps × "
        f"{profile.imagenet_fine_search.max_iter} iterations)": (range(k), _figure5_search(
            full, targets, profile.imagenet_fine_search, profile, target_seed=target_seed)),
        "every image towards 'ostrich', as in the paper": (keep, _figure5_search(
            not_ostrich, torch.full((len(keep),), OSTRICH), profile.imagenet_search, profile, target="ostrich")),
        f"input at {LOW_RESOLUTION} × {LOW_RESOLUTION}": (range(k), _figure5_search(
            low, targets, profile.imagenet_search, profile, target_seed=target_seed, side=LOW_RESOLUTION)),
    }
    rows = {}
    for setting, (index, result) in results.items():
        chapter = chapter_result.distortion[list(index)][chapter_result.success[list(index)]]
        chapter_mean = chapter.mean().item() if len(chapter) else float("nan")
        mean = result.distortion[result.success].mean().item() if result.success.any() else float("nan")
        rows[setting] = {"images": len(result.success), "reached target (%)": 100 * result.success.double().mean().item(),
                         "average distortion": mean, "× the chapter's": mean / chapter_mean,
                         "in 8-bit levels": EIGHT_BIT * mean}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("setting")


def figure5_rounding(images: ImageSet, result: AttackResult) -> dict[str, float]:
    """Whether Figure 5's adversarial images survive being saved as 8-bit pictures: each rounded to
    the nearest of 256 grey levels per channel.

    Returns:
        ``"still at target (%)"``: the share of rounded images still classified as their target;
        ``"pixels unchanged by the attack (%)"``: the share of pixels whose rounded value equals the
        original's rounded value.
    """
    rounded = (result.adversarial * EIGHT_BIT).round() / EIGHT_BIT
    net = efficientnet_lite0()
    with torch.no_grad():
        still = net(rounded).argmax(1) == net(result.adversarial).argmax(1)  # every image reached its target
    same = (rounded * EIGHT_BIT).round() == (images.images * EIGHT_BIT).round()
    return {"still at target (%)": 100 * still.double().mean().item(),
            "pixels unchanged by the attack (%)": 100 * same.double().mean().item()}


def figure5_figure(images: ImageSet, result: AttackResult, shown: int = 6) -> Figure:
    """Original, magnified difference and adversarial image, with the class reached, for the first images."""
    part = slice(0, min(shown, len(images)))
    with torch.no_grad():
        reached = efficientnet_lite0()(result.adversarial[part]).argmax(1)
    titles = [f"class {t} (was {label})" for t, label in zip(reached.tolist(), images.labels[part].tolist())]
    return plots.adversarial_triplets(images.images[part], result.adversarial[part], titles)


def check_figure5(result: AttackResult) -> float:
    """Every image reaches its target, with no more average distortion than the paper's AlexNet needed.
    Returns ours / the paper's average distortion."""
    assert result.success.all(), "every image must reach its target"
    ratio = result.distortion.mean().item() / paper.FIGURES["figure5_average_distortion"]
    assert ratio <= 1, f"EfficientNet-Lite0 needs {ratio:.2f}x the paper's distortion"
    return ratio


def decide_claims(result: AttackResult, largest: pd.DataFrame, alexnet: pd.DataFrame | None) -> pd.DataFrame:
    """Decide :data:`CLAIMS` from :func:`figure5`'s result, :func:`largest_bounds` (the paper's own AlexNet row
    left out) and :func:`alexnet_table` (None where torchvision's AlexNet is absent).

    Returns:
        The claims table of :func:`intriguing.paper.claims_table`.
    """
    reference = paper.FIGURES["figure5_average_distortion"]
    mean = result.distortion.mean().item()
    imagenet = {f"image {i}": bool(ok) for i, ok in enumerate(result.success.tolist())}
    imagenet["mean distortion at most the paper's"] = mean <= reference
    imagenet_row = paper.decide(
        "adversarial-near-every-image-imagenet", imagenet,
        f"EfficientNet-Lite0: {int(result.success.sum())} of {len(result.success)} images reached their target; mean "
        f"distortion {mean:.4f}, {mean / reference:.2f}× the paper's {reference:.4f}")
    first = largest.drop(index=PAPERS_ALEXNET, errors="ignore")["first layer's upper bound"].astype(float)
    if alexnet is not None:
        first["AlexNet (torchvision)"] = float(alexnet[("ours (torchvision's AlexNet)", "Upper bound")].iloc[0])
    convolutional = [name for name in first.index if name in CONVOLUTIONAL or name.startswith("AlexNet")]
    unstable = {name: bool(first[name] > 1) for name in convolutional}
    others = first.drop(index=convolutional)
    first_row = paper.decide(
        "first-layer-unstable", unstable,
        "first layer's upper bound: " + ", ".join(f"{name} {first[name]:.2f}" for name in convolutional)
        + ("; of the fully connected networks (not cases): " + _range_of(others) if len(others) else ""))
    return paper.claims_table([imagenet_row, first_row])


def _range_of(bounds: pd.Series) -> str:
    """``"a (name) to b (name)"`` for a series of bounds."""
    return f"{bounds.min():.2f} ({bounds.idxmin()}) to {bounds.max():.2f} ({bounds.idxmax()})"
