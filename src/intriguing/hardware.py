"""Where tensors run: CUDA when present, else the CPU. Nothing in the book needs a GPU.

``$INTRIGUING_DEVICE`` (``cpu``, ``cuda`` or ``cuda:N``) overrides the choice, e.g. to compare a
GPU run with a CPU run on the same machine.
"""

from __future__ import annotations

import os

import torch

__all__ = ["DEVICE_VAR", "device"]

DEVICE_VAR = "INTRIGUING_DEVICE"


def device() -> torch.device:
    """``$INTRIGUING_DEVICE`` if set, else CUDA when present, else the CPU.

    Raises:
        ValueError: ``$INTRIGUING_DEVICE`` names no device torch knows, or CUDA without a GPU.
    """
    chosen = os.environ.get(DEVICE_VAR)
    if not chosen:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(chosen)
    except RuntimeError as error:
        raise ValueError(f"${DEVICE_VAR}={chosen!r} is not a device: {error}") from error
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"${DEVICE_VAR}={chosen!r}: choose cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"${DEVICE_VAR}={chosen!r} but torch sees no CUDA device")
    return dev
