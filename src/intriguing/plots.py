"""Figures shared by the chapters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import Tensor

from .data import check_images

if TYPE_CHECKING:
    from .train import FitLog

__all__ = ["digit_grid", "loss_curves", "pairs_grid"]


def digit_grid(images: Tensor, titles: Sequence[str] | None = None, ncols: int = 10,
               size: float = 1.0) -> Figure:
    """Show images (N, 1, 28, 28) in [0, 1] in a grid, black on white as printed digits."""
    check_images(images)
    n = len(images)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * (1.25 if titles else 1)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i, 0].cpu(), cmap="gray_r", vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


def pairs_grid(originals: Tensor, distorted: Tensor, ncols: int = 10, size: float = 0.9) -> Figure:
    """Figure 7's layout: originals in odd columns, their distorted versions beside them.

    Args:
        originals, distorted: (N, 1, 28, 28) in [0, 1], N·2 a multiple of ``ncols``.
    """
    if originals.shape != distorted.shape:
        raise ValueError(f"shapes differ: {tuple(originals.shape)} and {tuple(distorted.shape)}")
    return digit_grid(torch.stack([originals, distorted], 1).flatten(0, 1), ncols=ncols, size=size)


def loss_curves(logs: dict[str, "FitLog"], step: int) -> Figure:
    """Plot L-BFGS objectives, one line per name, on a log scale.

    Args:
        logs: name -> a :class:`intriguing.train.FitLog`, whose losses were recorded every
            ``step`` iterations and once at the end.
        step: iterations between recorded losses.
    """
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, log in logs.items():
        xs = [min(step * i, log.iterations) for i in range(len(log.losses))]
        ax.plot(xs, log.losses, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("L-BFGS iteration")
    ax.set_ylabel("objective")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig
