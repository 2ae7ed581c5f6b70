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


def _mmapped_bytes() -> int:
    """glibc's count of bytes it holds in blocks of their own ``mmap`` (``mallinfo2().hblkhd``)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    return int(libc.mallinfo2().hblkhd)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the allocator setting is glibc's")
def test_a_large_tensor_is_not_given_its_own_mapping_once_intriguing_is_imported(monkeypatch):
    monkeypatch.delenv(hardware.ALLOCATOR_VAR, raising=False)
    assert hardware.keep_large_allocations()
    before = _mmapped_bytes()
    big = torch.ones(64 * 2**20 // 4)  # 64 MiB: over glibc's largest threshold of its own (32 MiB)
    assert _mmapped_bytes() - before < big.numel() * 4
    del big


def test_the_allocator_variable_keeps_glibcs_threshold_or_names_its_bad_value(monkeypatch):
    monkeypatch.setenv(hardware.ALLOCATOR_VAR, "default")
    assert not hardware.keep_large_allocations()
    monkeypatch.setenv(hardware.ALLOCATOR_VAR, "fast")
    with pytest.raises(ValueError, match="INTRIGUING_HOST_ALLOCATOR='fast': choose tuned or default"):
        hardware.keep_large_allocations()
