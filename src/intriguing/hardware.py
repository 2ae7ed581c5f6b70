"""Where tensors run, and how the host's C library keeps their memory.

Tensors run on CUDA when present, else the CPU; nothing in the book needs a GPU. ``$INTRIGUING_DEVICE``
(``cpu``, ``cuda`` or ``cuda:N``) overrides the choice, e.g. to compare a GPU run with a CPU run on the
same machine.

On the host, glibc's ``malloc`` gives the free top of its heap back to the kernel once twice its current
mmap threshold is free (a few MiB), so a process that keeps making and freeing tensors of a few MiB, as the
minimum-distortion search does (1,000 MNIST images are 3 MB), has the kernel fault in and zero its memory
page by page again and again: the search's free-coordinate mask of one batch (eight element-wise operations)
took 2.4-6.2 ms under glibc's own setting against 0.49-0.62 ms under this one (2 CPU cores, 2026-12-05).

:func:`keep_freed_heap`, called when :mod:`intriguing` is imported, keeps up to :data:`TRIM_BYTES` of free
heap instead, and fixes the mmap threshold at 32 MiB, the largest value glibc's own adjustment reaches, so
that the heap grows only for blocks under 32 MiB: a larger tensor takes free heap where there is room for it,
else a mapping of its own that is given back when freed. With both thresholds at 2 GiB instead, the heap grew
around large freed blocks (the networks chapter's process reached 14.5 GB); with these, the cold full build's
largest process peaked at 3.9 GB (4.4 GB in the build before, with glibc's own setting and an autoencoder that
made its large tensors afresh). It changes no arithmetic; ``benchmarks/host_allocator.py`` measures both
settings. Set ``$INTRIGUING_HOST_ALLOCATOR=default`` before importing :mod:`intriguing` to keep glibc's own
behaviour.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

import torch

__all__ = ["ALLOCATOR_VAR", "DEVICE_VAR", "MMAP_BYTES", "TRIM_BYTES", "device", "keep_freed_heap"]

DEVICE_VAR = "INTRIGUING_DEVICE"
ALLOCATOR_VAR = "INTRIGUING_HOST_ALLOCATOR"
MMAP_BYTES = 32 * 2**20
"""Allocations of this many bytes or more get their own ``mmap`` (glibc's ``DEFAULT_MMAP_THRESHOLD_MAX`` on 64 bits)."""
TRIM_BYTES = 256 * 2**20
"""Free memory at the top of the heap that glibc keeps rather than gives back to the kernel."""
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers, from glibc's malloc.h


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


def keep_freed_heap() -> bool:
    """Make glibc keep freed heap memory for the next tensors (see the module's docstring).

    Returns:
        Whether both thresholds were set: False where the C library is not glibc, where
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
    return all(libc.mallopt(ctypes.c_int(parameter), ctypes.c_int(value))
               for parameter, value in ((_M_MMAP_THRESHOLD, MMAP_BYTES), (_M_TRIM_THRESHOLD, TRIM_BYTES)))
