"""Phase timing: seconds and calls per phase, and matrix-product FLOPs counted by hand on tiny products."""

import torch

from intriguing.adversarial_training import AdversarialTrainingSettings, adversarial_fit
from intriguing.attacks import SearchSettings
from intriguing.data import Split
from intriguing.models import SigmoidMLP
from intriguing.phases import PhaseTimes, matmul_peak


def test_a_phase_counts_its_calls_its_time_and_its_matrix_products_flops():
    times = PhaseTimes("cpu", count_flops=True)
    a, b = torch.rand(4, 5), torch.rand(5, 3)
    for _ in range(2):
        with times("product"):
            a @ b  # 2 · 4 · 5 · 3 = 120 FLOPs
    with times("nothing"):
        a + 1  # no matrix product
    assert times.calls == {"product": 2, "nothing": 1}
    assert times.flops["product"] == 240 and times.flops["nothing"] == 0
    assert all(s >= 0 for s in times.seconds.values())
    untimed = PhaseTimes("cpu")
    with untimed("product"):
        a @ b
    assert untimed.flops == {} and untimed.calls == {"product": 1}


def test_pooled_training_records_its_steps_searches_and_evaluations():
    torch.manual_seed(0)
    data = Split(torch.rand(48, 1, 28, 28), torch.randint(10, (48,)))
    settings = AdversarialTrainingSettings(pool_layers=(0, 2), pool_size=8, refresh_every=2, epochs=2, pool_start=1,
                                           batch_size=16, lr=1e-2, search=SearchSettings(c_steps=2, max_iter=3))
    times = PhaseTimes("cpu")
    curve = adversarial_fit(SigmoidMLP((8, 6)), data, settings, weight_decay=(0.0,) * 3, seed=0, evaluation=data,
                            progress=False, times=times)
    # 3 steps an epoch; the pools start in epoch 2 (steps 3, 4, 5) and refresh at steps 3 and 4.
    assert times.calls == {"training steps": 6, "search, layer 0": 2, "search, layer 2": 2, "evaluation": 2}
    assert curve.refreshes == 2


def test_the_matmul_peak_is_a_positive_rate():
    assert matmul_peak("cpu", size=64, repeats=2) > 0
