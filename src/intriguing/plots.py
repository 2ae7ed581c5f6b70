"""What a reader sees of a run: the figures shared by the chapters, and values glued into the prose.

Numbers enter a chapter's markdown through MyST-NB's ``{glue:text}`` role; :func:`glue` stores them
in the executed notebook, and Jupyter Book pastes them into the text when it renders the page. Where
``$INTRIGUING_GLUE`` names a file, every glued value is also appended to it with the chapter that glued it
(``$INTRIGUING_CHAPTER``), so that two runs of a chapter can be compared number by number
(:mod:`intriguing.rerun`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import Tensor

from .data import check_images
from .paper import CHAPTER_VAR

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler

    from .train import FitLog

__all__ = ["GLUE_VAR", "NOT_MEASURED", "Text", "adversarial_triplets", "curves", "difference_heatmap", "glue", "histograms",
           "image_grid", "line_panels", "loss_curves", "pairs_grid", "show", "table"]


GLUE_VAR = "INTRIGUING_GLUE"
"""A file that :func:`glue` appends every glued value to, with the chapter that glued it."""


class Text(str):
    """A glued string. Its plain-text form is the string's Python literal, because MyST-NB reads a glued value's
    plain text back with ``ast.literal_eval`` before pasting it into the prose: without the quotes a string such
    as ``"60,000"`` would read as the tuple ``(60, 0)``."""

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(str(self)))


def glue(name: str, value: Any) -> None:
    """Store ``value`` under ``name`` for the prose (``{glue:text}`name`` or ``{glue:text}`name:.2f``).

    Numbers are stored as they are, so the markdown chooses their format; strings are stored as
    :class:`Text`, so they appear without quotes. Nothing is shown in the notebook's output. Without
    ``myst_nb`` (on Colab, say) nothing is stored: the prose is rendered only by Jupyter Book.

    Args:
        name: a key unique within the notebook (letters, digits, ``_``).
        value: a number or a string.
    """
    if not name.replace("_", "").isalnum():
        raise ValueError(f"glue names are letters, digits and '_', got {name!r}")
    if isinstance(value, str):
        value = Text(value)
    elif hasattr(value, "item"):  # numpy and torch scalars
        value = value.item()
    log = os.environ.get(GLUE_VAR)
    if log:
        finite = isinstance(value, (int, float)) and not isinstance(value, str) and math.isfinite(value)
        logged = value if finite else str(value)  # JSON has no NaN
        with open(log, "a", encoding="utf-8") as out:
            out.write(json.dumps({"chapter": os.environ.get(CHAPTER_VAR, ""), "name": name, "value": logged}) + "\n")
    try:
        from myst_nb import glue as myst_glue
    except ImportError:  # e.g. on Colab without Jupyter Book: the prose is not rendered there
        return
    myst_glue(name, value, display=False)


NOT_MEASURED = "–"
"""What a table shows where a number does not exist (an sd or a test with one seed): never "NaN"."""


def table(frame: pd.DataFrame, digits: int = 3) -> Styler:
    """``frame`` for display: numbers rounded to ``digits`` decimals, missing ones as :data:`NOT_MEASURED`."""
    return frame.style.format(precision=digits, na_rep=NOT_MEASURED)


def show(fig: Figure) -> None:
    """Display ``fig`` in a notebook now and close it, so that a loop's figures appear in order
    between its other outputs rather than all at the end of the cell."""
    from IPython.display import display

    display(fig)
    plt.close(fig)


def image_grid(images: Tensor, titles: Sequence[str] | None = None, ncols: int = 10,
               size: float = 1.0) -> Figure:
    """Show images (N, C, H, W) in [0, 1] in a grid: one channel black on white as printed digits,
    three as RGB."""
    check_images(images, shape=None)
    if images.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {images.shape[1]}")
    n = len(images)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * (1.25 if titles else 1)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            if images.shape[1] == 1:
                ax.imshow(images[i, 0].cpu(), cmap="gray_r", vmin=0, vmax=1)
            else:
                ax.imshow(images[i].permute(1, 2, 0).cpu().numpy())
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
    return image_grid(torch.stack([originals, distorted], 1).flatten(0, 1), ncols=ncols, size=size)


def loss_curves(logs: dict[str, FitLog], step: int) -> Figure:
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


def curves(lines: dict[str, Sequence[float]], xlabel: str, ylabel: str) -> Figure:
    """One line per name, its values plotted against 1, 2, … (e.g. a test error after each epoch)."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, values in lines.items():
        ax.plot(range(1, len(values) + 1), values, label=name, marker=".")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def line_panels(panels: dict[str, dict[str, tuple[Sequence[float], Sequence[float]]]], xlabel: str) -> Figure:
    """Side-by-side panels, one per entry of ``panels`` (its name the panel's y label), each with one line
    per name: (x values, y values)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.0), squeeze=False)
    for ax, (ylabel, lines) in zip(axes[0], panels.items()):
        for name, (xs, ys) in lines.items():
            ax.plot(list(xs), list(ys), label=name, marker=".", markersize=3)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def histograms(samples: dict[str, Sequence[float]], xlabel: str, bins: int = 40) -> Figure:
    """One outlined histogram per name, on shared bins over the range of all samples (NaN left out),
    each normalised to unit area so that samples of different sizes compare."""
    values = {name: [float(v) for v in vs if v == v] for name, vs in samples.items()}
    everything = [v for vs in values.values() for v in vs]
    if not everything:
        raise ValueError("histograms need at least one finite value")
    edges = torch.linspace(min(everything), max(everything) + 1e-12, bins + 1).tolist()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for name, vs in values.items():
        ax.hist(vs, bins=edges, density=True, histtype="step", linewidth=1.5, label=f"{name} ({len(vs):,})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def difference_heatmap(diff: pd.DataFrame, title: str, limit: float | None = None) -> Figure:
    """Show a table of differences (ours − paper) as an annotated heat map, red above and blue below.

    Args:
        diff: rows × columns of differences, e.g. in percentage points.
        title: the figure's title.
        limit: the colour scale's half-range (default: the largest |difference|).
    """
    values = diff.to_numpy(dtype=float)
    limit = limit or max(float(abs(values).max()), 1e-9)
    fig, ax = plt.subplots(figsize=(1.1 * diff.shape[1] + 3, 0.45 * diff.shape[0] + 1.2))
    image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for (i, j), value in pd.DataFrame(values).stack().items():
        ax.text(j, i, f"{value:+.1f}", ha="center", va="center", fontsize=8,
                color="white" if abs(value) > 0.6 * limit else "black")
    ax.set_xticks(range(diff.shape[1]), diff.columns, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(diff.shape[0]), diff.index, fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig


def adversarial_triplets(originals: Tensor, adversarial: Tensor, titles: Sequence[str] | None = None,
                         magnification: float = 10.0, size: float = 2.0) -> Figure:
    """Figure 5's layout, one row per image: the original, the difference magnified (grey is zero),
    and the adversarial image.

    Args:
        originals, adversarial: (N, 3, H, W) RGB in [0, 1].
        titles: a caption per row, shown over the adversarial image.
        magnification: the factor applied to the difference before it is shown around 0.5.
    """
    check_images(originals, "originals", shape=None)
    check_images(adversarial, "adversarial images", shape=None)
    if originals.shape != adversarial.shape:
        raise ValueError(f"shapes differ: {tuple(originals.shape)} and {tuple(adversarial.shape)}")
    n = len(originals)
    fig, axes = plt.subplots(n, 3, figsize=(3 * size, n * size), squeeze=False)
    difference = (0.5 + magnification * (adversarial - originals)).clamp(0, 1)
    for i in range(n):
        for j, (image, label) in enumerate([(originals[i], "original"),
                                            (difference[i], f"difference ×{magnification:g}"),
                                            (adversarial[i], titles[i] if titles else "adversarial")]):
            ax = axes[i, j]
            ax.imshow(image.permute(1, 2, 0).cpu().numpy())
            ax.set_title(label, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    return fig
