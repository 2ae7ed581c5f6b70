"""Where tensors run, and how the host allocates their memory.

Tensors run on CUDA when present, else the CPU; nothing in the book needs a GPU. ``$INTRIGUING_DEVICE``
(``cpu``, ``cuda`` or ``cuda:N``) overrides the choice, e.g. to compare a GPU run with a CPU run on the
same machine.

On the host, glibc's ``malloc`` serves every allocation of 32 MiB or more with a fresh ``mmap`` and gives it
back with ``munmap`` when the tensor is freed, so each such tensor is faulted in and zeroed by the kernel
page by page, every time. Full-batch training makes several per evaluation (60,000 x 784 float32 images
are 188 MB), and on 2 CPU cores that page work took a quarter of the sparse autoencoder's gradient
(``benchmarks/host_allocator.py``). :func:`keep_large_allocations`, called when :mod:`intriguing` is
imported, raises that threshold so freed blocks are reused instead. It changes no arithmetic: blocks keep
their 64-byte alignment and results are bit for bit the same. ``$INTRIGUING_HOST_ALLOCATOR=default`` keeps
glibc's own threshold.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

import torch

__all__ = ["ALLOCATOR_VAR", "DEVICE_VAR", "device", "keep_large_allocations"]

DEVICE_VAR = "INTRIGUING_DEVICE"
ALLOCATOR_VAR = "INTRIGUING_HOST_ALLOCATOR"
MMAP_THRESHOLD = 2**31 - 1
"""Bytes from which glibc serves an allocation with its own ``mmap``: the largest value ``mallopt`` takes."""
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h


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


def keep_large_allocations() -> bool:
    """Make glibc reuse freed large blocks instead of unmapping them (see the module's docstring).

    Returns:
        Whether the threshold was raised: False where the C library is not glibc, where
        ``$INTRIGUING_HOST_ALLOCATOR`` is ``default``, or where ``mallopt`` refused.

    Raises:
        ValueError: ``$INTRIGUING_HOST_ALLOCATOR`` is set to something other than ``tuned`` or ``default``.
    """
    choice = os.environ.get(ALLOCATOR_VAR, "tuned")
    if choice not in ("tuned", "default"):
        raise ValueError(f"${ALLOCATOR_VAR}={choice!r}: choose tuned or default")
    if choice == "default" or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return bool(libc.mallopt(ctypes.c_int(_M_MMAP_THRESHOLD), ctypes.c_int(MMAP_THRESHOLD)))
