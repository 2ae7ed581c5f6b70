"""Predictions and error rates of networks on labelled image sets, batched."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import torch
from torch import Tensor, nn

from .data import Split, check_images
from .hardware import device

__all__ = ["EVAL_BATCH", "error_rate", "error_table", "misclassified", "predict"]

EVAL_BATCH = 10_000
"""Images per forward pass of a network that names no batch size of its own."""


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, batch_size: int | None = None, in_box: bool = True) -> Tensor:
    """Predicted labels.

    Args:
        model: maps images (B, 1, 28, 28) to logits (B, 10).
        images: (N, 1, 28, 28) in [0, 1].
        batch_size: images per forward pass (None: the model's ``eval_batch_size`` if it has one, else
            :data:`EVAL_BATCH`).
        in_box: require pixels in [0, 1]; pass False for images deliberately outside the box,
            such as the paper's unclipped Gaussian-noise controls.

    Returns:
        (N,) int64 labels, on the CPU.
    """
    check_images(images, in_box=in_box)
    if batch_size is None:
        batch_size = getattr(model, "eval_batch_size", EVAL_BATCH)
    dev = device()
    was_training = model.training
    model.eval().to(dev)
    try:
        return torch.cat([model(batch.to(dev)).argmax(1).cpu() for batch in images.split(batch_size)])
    finally:
        model.train(was_training)


def misclassified(model: nn.Module, data: Split, in_box: bool = True) -> Tensor:
    """Which examples of ``data`` ``model`` misclassifies: (N,) bool (``in_box`` as in :func:`predict`)."""
    return predict(model, data.images, in_box=in_box) != data.labels


def error_rate(model: nn.Module, data: Split, in_box: bool = True) -> float:
    """The share of ``data`` that ``model`` misclassifies, in [0, 1] (``in_box`` as in :func:`predict`)."""
    if len(data) == 0:
        raise ValueError("cannot measure an error rate on an empty set")
    return misclassified(model, data, in_box).double().mean().item()


def error_table(models: Mapping[str, nn.Module], sets: Mapping[str, Split]) -> pd.DataFrame:
    """Error rates in percent: one row per model, one column per labelled set."""
    return pd.DataFrame(
        {set_name: [100 * error_rate(m, data) for m in models.values()] for set_name, data in sets.items()},
        index=pd.Index(list(models), name="network"),
    )
