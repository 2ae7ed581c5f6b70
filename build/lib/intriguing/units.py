"""§3: are single units of φ(x) more meaningful than random directions? Activations, top-k images, coherence.

φ(x) is the representation a layer reads: :func:`activations` captures the *input* of a named
module with a forward hook (by default the network's last linear layer, i.e. its last hidden
representation). :func:`top_images` ranks an image set along a unit e_i or any direction v, and
:func:`coherence` scores a top-k set by its label purity and by a label-free similarity.
:func:`unit_vs_random` runs the whole measurement the paper lacks: all units against as many
seeded random directions, with a two-sample test.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from scipy.stats import mannwhitneyu
from torch import Tensor, nn

from .hardware import device

__all__ = ["CoherenceTest", "activations", "coherence", "compare_scores", "last_linear_layer", "random_directions",
           "top_images", "unit_directions", "unit_vs_random"]


def last_linear_layer(model: nn.Module) -> str:
    """The name of the last ``nn.Linear`` of ``model``: its input is the final hidden representation."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no linear layer; name the layer to read")
    return names[-1]


@torch.no_grad()
def activations(model: nn.Module, images: Tensor, layer: str | None = None, batch_size: int = 1000) -> Tensor:
    """φ(x): the input of module ``layer`` for every image, flattened.

    Args:
        model: any network; used in eval mode.
        images: (N, C, H, W) in the model's input range.
        layer: a name from ``model.named_modules()``; default :func:`last_linear_layer`.
        batch_size: images per forward pass.

    Returns:
        (N, D) float32 on the CPU.
    """
    layer = layer or last_linear_layer(model)
    modules = dict(model.named_modules())
    if layer not in modules:
        raise ValueError(f"unknown layer {layer!r}; the model has {[n for n in modules if n]}")
    captured: list[Tensor] = []
    hook = modules[layer].register_forward_hook(lambda mod, inp, out: captured.append(inp[0].flatten(1).cpu()))
    dev = device()
    was_training = model.training
    model.eval().to(dev)
    try:
        for batch in images.split(batch_size):
            model(batch.to(dev))
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(captured).float()


def unit_directions(dim: int) -> Tensor:
    """The natural basis e_1, ..., e_D as rows. -> (D, D)."""
    return torch.eye(dim)


def random_directions(dim: int, count: int, seed: int = 0) -> Tensor:
    """``count`` directions drawn uniformly from the unit sphere of R^dim, seeded. -> (count, dim)."""
    gen = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(count, dim, generator=gen), dim=1)


def top_images(phi: Tensor, directions: Tensor, k: int) -> Tensor:
    """The k images with the largest ⟨φ(x), v⟩ for each direction v, best first.

    Args:
        phi: (N, D) activations; directions: (M, D).

    Returns:
        (M, k) int64 image indices.
    """
    if phi.ndim != 2 or directions.ndim != 2 or phi.shape[1] != directions.shape[1]:
        raise ValueError(f"phi (N, D) and directions (M, D) must share D; got {tuple(phi.shape)} "
                         f"and {tuple(directions.shape)}")
    if not 0 < k <= len(phi):
        raise ValueError(f"k must be in 1..{len(phi)}, got {k}")
    return (phi @ directions.T).T.topk(k, dim=1).indices


def coherence(top: Tensor, labels: Tensor, features: Tensor) -> pd.DataFrame:
    """Two scores of how alike each top-k set is.

    Args:
        top: (M, k) image indices, one set per row (from :func:`top_images`).
        labels: (N,) the images' labels.
        features: (N, F) a label-free description of the images, e.g. their pixels or φ at another
            layer.

    Returns:
        One row per set: ``label purity``, the share of its most common label (1/k to 1), and
        ``mean cosine``, the mean cosine similarity of its members' features over all pairs.
    """
    k = top.shape[1]
    if k < 2:
        raise ValueError("a coherence score needs at least two images per set")
    set_labels = labels[top]  # (M, k)
    purity = (set_labels.unsqueeze(2) == set_labels.unsqueeze(1)).sum(2).max(1).values.double() / k
    unit = F.normalize(features[top].double(), dim=2)  # (M, k, F)
    gram = unit @ unit.transpose(1, 2)
    mean_cosine = (gram.sum((1, 2)) - k) / (k * (k - 1))
    return pd.DataFrame({"label purity": purity.numpy(), "mean cosine": mean_cosine.numpy()})


@dataclass(frozen=True)
class CoherenceTest:
    """Coherence of the top-k sets along units and along random directions, and their comparison.

    Attributes:
        units: :func:`coherence` of every unit's top-k set.
        random: the same for as many random directions.
        summary: per score, the two means, the Mann-Whitney U test's two-sided p-value and the
            common-language effect size P(unit score > random score).
    """

    units: pd.DataFrame
    random: pd.DataFrame
    summary: pd.DataFrame


def compare_scores(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str] = ("units", "random")) -> pd.DataFrame:
    """Per score column: mean of each sample, the two-sided Mann-Whitney p-value and P(a > b) (ties ½)."""
    rows = {}
    for score in a.columns:
        test = mannwhitneyu(a[score], b[score], alternative="two-sided")
        rows[score] = {f"mean, {names[0]}": a[score].mean(), f"mean, {names[1]}": b[score].mean(),
                       "p-value": test.pvalue, f"P({names[0]} > {names[1]})": test.statistic / (len(a) * len(b))}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("score")


def unit_vs_random(phi: Tensor, labels: Tensor, features: Tensor, k: int = 10, seed: int = 0) -> CoherenceTest:
    """§3's claim, measured: the top-k sets of all D units against those of D random directions.

    Args:
        phi: (N, D) activations; labels: (N,); features: (N, F) for the label-free score.
        k: images per set.
        seed: the random directions' seed.
    """
    units = coherence(top_images(phi, unit_directions(phi.shape[1]), k), labels, features)
    random = coherence(top_images(phi, random_directions(phi.shape[1], phi.shape[1], seed), k), labels, features)
    return CoherenceTest(units, random, compare_scores(units, random))
