import ctypes
import ctypes.util
import platform

import pytest
import torch

from intriguing import hardware


def test_the_device_variable_overrides_the_choice(monkeypatch):
    monkeypatch.delenv(hardware.DEVICE_VAR, raising=False)
    assert hardware.device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv(hardware.DEVICE_VAR, "cpu")
    assert hardware.device() == torch.device("cpu")
    monkeypatch.setenv(hardware.DEVICE_VAR, "gpu0")
    with pytest.raises(ValueError, match="INTRIGUING_DEVICE='gpu0' is not a device"):
        hardware.device()
    monkeypatch.setenv(hardware.DEVICE_VAR, "meta")
    with pytest.raises(ValueError, match="choose cpu, cuda or cuda:N"):
        hardware.device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_asking_for_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(hardware.DEVICE_VAR, "cuda")
    with pytest.raises(ValueError, match="torch sees no CUDA device"):
        hardware.device()


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mallinfo() -> _MallInfo2:
    """glibc's ``mallinfo2``: ``arena`` the heap's bytes, ``hblkhd`` the bytes held in blocks of their own ``mmap``."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    return libc.mallinfo2()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the allocator setting is glibc's")
def test_freed_heap_is_kept_and_large_tensors_keep_their_own_mapping(monkeypatch):
    monkeypatch.delenv(hardware.ALLOCATOR_VAR, raising=False)
    assert hardware.keep_freed_heap()
    before = _mallinfo()
    medium = torch.ones(16 * 2**20 // 4)  # 16 MiB: from the heap, not a mapping of its own
    assert _mallinfo().hblkhd - before.hblkhd < medium.numel() * 4
    grown = _mallinfo().arena
    del medium
    assert _mallinfo().arena == grown  # the freed top of the heap is kept, not trimmed
    mapped = _mallinfo().hblkhd
    large = torch.ones(64 * 2**20 // 4)  # 64 MiB: over the 32 MiB threshold, its own mapping
    assert _mallinfo().hblkhd - mapped >= large.numel() * 4
    del large
    assert _mallinfo().hblkhd == mapped  # and given back when freed


def test_the_allocator_variable_keeps_glibcs_setting_or_names_its_bad_value(monkeypatch):
    monkeypatch.setenv(hardware.ALLOCATOR_VAR, "default")
    assert not hardware.keep_freed_heap()
    monkeypatch.setenv(hardware.ALLOCATOR_VAR, "fast")
    with pytest.raises(ValueError, match="INTRIGUING_HOST_ALLOCATOR='fast': choose tuned or default"):
        hardware.keep_freed_heap()
