import json
import os
import platform
import subprocess
import sys

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


_PROBE = """
import ctypes, ctypes.util, json
import torch
import intriguing  # its import applies the allocator setting unless $INTRIGUING_HOST_ALLOCATOR=default

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
libc.mallinfo2.restype = MallInfo2
info = libc.mallinfo2  # arena: the heap's bytes; hblkhd: bytes in blocks of their own mmap
before = info().hblkhd
medium = torch.ones(16 * 2**20 // 4)  # 16 MiB
medium_mapped = info().hblkhd - before
grown = info().arena
del medium
kept = info().arena == grown
mapped = info().hblkhd
large = torch.ones(64 * 2**20 // 4)  # 64 MiB
large_mapped = info().hblkhd - mapped
del large
print(json.dumps({"medium_mapped": medium_mapped, "kept": kept, "large_mapped": large_mapped,
                  "large_returned": info().hblkhd == mapped}))
"""


def _probe(setting: str) -> dict:
    """The allocator's behaviour in a fresh process (a test process's history changes where glibc puts a block)."""
    env = {**os.environ, hardware.ALLOCATOR_VAR: setting}
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the allocator setting is glibc's")
def test_freed_heap_is_kept_and_large_tensors_keep_their_own_mapping():
    tuned, default = _probe("tuned"), _probe("default")
    mib16, mib64 = 16 * 2**20, 64 * 2**20
    assert default["medium_mapped"] >= mib16  # glibc's own: a fresh process maps 16 MiB on its own
    assert tuned["medium_mapped"] < mib16 and tuned["kept"]  # tuned: from the heap, which keeps it once freed
    assert tuned["large_mapped"] >= mib64 and tuned["large_returned"]  # 64 MiB: its own mapping, given back


def test_the_allocator_variable_keeps_glibcs_setting_or_names_its_bad_value(monkeypatch):
    monkeypatch.setenv(hardware.ALLOCATOR_VAR, "default")
    assert not hardware.keep_freed_heap()
    monkeypatch.setenv(hardware.ALLOCATOR_VAR, "fast")
    with pytest.raises(ValueError, match="INTRIGUING_HOST_ALLOCATOR='fast': choose tuned or default"):
        hardware.keep_freed_heap()
