"""Where tensors run: CUDA when present, else the CPU. Nothing in the book needs a GPU."""

from __future__ import annotations

import torch

__all__ = ["device"]


def device() -> torch.device:
    """CUDA when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
