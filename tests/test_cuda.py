"""The library's paths on a CUDA GPU: the same calls as the smoke profile's chapters, on the GPU, with
results that match the CPU's. Skipped where torch sees no GPU; every other test also runs on the GPU
there, because the library picks CUDA by itself."""

import pytest
import torch

from intriguing import artifacts, hardware
from intriguing.adversarial_training import (
    AdversarialPool,
    AdversarialTrainingSettings,
    StackedSigmoidMLP,
    adversarial_fit,
    refresh_stack,
    to_device,
)
from intriguing.attacks import SearchSettings, min_distortion_attack, random_targets
from intriguing.data import load_mnist
from intriguing.evaluate import error_rate
from intriguing.lbfgs_box import box_lbfgs
from intriguing.models import SigmoidMLP
from intriguing.units import activations

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU")]


def on(dev: str, monkeypatch) -> None:
    monkeypatch.setenv(hardware.DEVICE_VAR, dev)
    assert hardware.device().type == dev


def test_box_lbfgs_runs_on_the_gpu_and_agrees_with_the_cpu():
    target = torch.rand(64, 50)
    solutions = {}
    for dev in ("cpu", "cuda"):
        t = target.to(dev)
        z = box_lbfgs(lambda z, i: (z - 2 * t[i] + 0.5).pow(2).sum(1), torch.full((64, 50), 0.5, device=dev), 100).z
        assert z.device.type == dev
        solutions[dev] = z.cpu()
    assert torch.allclose(solutions["cpu"], solutions["cuda"], atol=1e-4)


def test_training_attacks_and_evaluation_run_on_the_gpu(monkeypatch, tmp_path, tiny):
    test = load_mnist("test").subset(slice(0, 200))
    nets, results = {}, {}
    for dev in ("cpu", "cuda"):
        on(dev, monkeypatch)
        monkeypatch.setenv("INTRIGUING_CACHE", str(tmp_path / dev))  # a cache per device
        nets[dev] = artifacts.trained_network("N100-100-10", tiny)
        images, labels = test.images[:20], test.labels[:20]
        results[dev] = min_distortion_attack(nets[dev].model, images, random_targets(labels), labels=labels,
                                             settings=SearchSettings(c_steps=4, max_iter=20), progress=False)
        assert results[dev].adversarial.device.type == "cpu"  # results come back to the CPU
        assert 0 <= error_rate(nets[dev].model, test) <= 1
        assert activations(nets[dev].model, images).shape == (20, 100)
    # float32 on two devices: the same training, up to summation order.
    assert abs(error_rate(nets["cpu"].model, test) - error_rate(nets["cuda"].model, test)) <= 0.02
    assert results["cuda"].success.all()
    ratio = results["cuda"].distortion.mean() / results["cpu"].distortion.mean()
    assert 0.95 <= ratio <= 1.05


def test_pooled_training_runs_on_the_gpu(monkeypatch):
    on("cuda", monkeypatch)
    data = load_mnist("test").subset(slice(0, 300))
    model = SigmoidMLP((20, 20))
    settings = AdversarialTrainingSettings(pool_layers=(0, 2), pool_size=40, refresh_every=3, epochs=2, pool_start=0,
                                           batch_size=32, lr=1e-2, search=SearchSettings(c_steps=2, max_iter=5))
    curve = adversarial_fit(model, data, settings, weight_decay=(0.0,) * 3, seed=0, evaluation=data, progress=False)
    assert curve.refreshes >= 3 and all(loss == loss for loss in curve.train_loss)
    assert next(model.parameters()).device.type == "cpu"  # handed back on the CPU


def test_pools_searched_together_on_the_gpu_equal_the_cpus_network_by_network(monkeypatch):
    """The stacked search (the GPU's default) against the CPU's search of one network at a time: the same draws,
    and the examples equal to float rounding (the network in float64 during the search)."""
    data = load_mnist("test").subset(slice(0, 200))
    models = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        models.append(SigmoidMLP((16, 12)))
    found = {}
    for dev, stacked in (("cpu", False), ("cuda", True)):
        on(dev, monkeypatch)
        stack = StackedSigmoidMLP(models).to(hardware.device())
        pools = [AdversarialPool((0, 1, 2), size=20) for _ in models]
        generators = [torch.Generator().manual_seed(seed) for seed in (1, 2, 3)]
        for _ in range(2):
            refresh_stack(pools, stack, data, 0.5, generators, SearchSettings(c_steps=3, max_iter=10), stacked=stacked)
        found[dev] = pools
    for a, b in zip(found["cpu"], found["cuda"]):
        assert b.inputs[0].device.type == "cuda"
        for k in (0, 1, 2):
            assert torch.equal(a.labels[k], b.labels[k].cpu()) and torch.equal(a.targets[k], b.targets[k].cpu())
            assert (a.inputs[k] - b.inputs[k].cpu()).abs().max() < 1e-3


def test_a_copy_to_the_gpu_through_pinned_memory_arrives_whole():
    t = torch.randint(1000, (4096,))
    moved = to_device(t, torch.device("cuda"))
    assert moved.device.type == "cuda" and torch.equal(moved.cpu(), t)
    assert torch.equal(to_device(t, torch.device("cpu")), t)
