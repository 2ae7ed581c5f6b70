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
