import pytest
import torch
from torch import nn

from intriguing import peers
from intriguing.attacks import SearchSettings, exact_linear_attack, min_distortion_attack, random_targets
from intriguing.peers import foolbox_attack, scipy_lbfgs_attack


@pytest.fixture(scope="module")
def sharp_linear():
    """A linear softmax model with trained-model-sized logits, 8 images and random targets."""
    torch.manual_seed(0)
    linear = nn.Linear(784, 10)
    with torch.no_grad():
        linear.weight.mul_(30)
    model = nn.Sequential(nn.Flatten(), linear)
    images = torch.rand(8, 1, 28, 28)
    targets = random_targets(model(images).argmax(1), seed=0)
    exact = exact_linear_attack(linear.weight, linear.bias, images, targets)
    return model, images, targets, exact


def test_scipy_reference_reaches_what_ours_reaches(sharp_linear):
    model, images, targets, exact = sharp_linear
    ref = scipy_lbfgs_attack(model, images, targets, settings=SearchSettings(c_steps=6), progress=False)
    ours = min_distortion_attack(model, images, targets, settings=SearchSettings(c_steps=6), progress=False)
    assert ref.success.all() and (model(ref.adversarial).argmax(1) == targets).all()
    assert ref.distortion.mean() <= 1.05 * exact.distortion.mean()
    assert ours.distortion.mean() == pytest.approx(ref.distortion.mean().item(), rel=0.02)


@pytest.mark.parametrize("name", ["FMN", "DDN"])
def test_no_foolbox_attack_beats_the_exact_optimum(sharp_linear, name):
    model, images, targets, exact = sharp_linear
    peer = foolbox_attack(name, model, images, targets, steps=50)
    assert peer.success.any()
    ok = peer.success
    assert (model(peer.adversarial[ok]).argmax(1) == targets[ok]).all()
    assert (peer.distortion[ok] >= exact.distortion[ok] * (1 - 1e-3)).all()


def test_unknown_foolbox_attack(sharp_linear):
    model, images, targets, _ = sharp_linear
    with pytest.raises(ValueError, match="unknown foolbox attack 'PGD'"):
        foolbox_attack("PGD", model, images, targets)


def test_every_attack_is_timed_warm_and_the_slow_ones_once(sharp_linear, monkeypatch):
    """Each attack runs untimed on WARMUP_EXAMPLES images, then up to TIMED_RUNS timed runs whose best is kept;
    one whose runs reach TIMING_BUDGET_S runs once."""
    model, images, targets, _ = sharp_linear
    images, targets = images.repeat(2, 1, 1, 1), targets.repeat(2)  # 16 images: more than the warm-up's
    clock, calls = [0.0], {}
    seconds = {"ours": [5.0, 2.0, 3.0], "scipy": [1.0, 1.0, 1.0], "FMN": [1.0] * 3, "DDN": [1.0] * 3,
               "C&W": [peers.TIMING_BUDGET_S]}

    def fake(name):
        def attack(x, t, *args, **kwargs):
            calls.setdefault(name, []).append(len(x))
            if len(x) > peers.WARMUP_EXAMPLES:
                clock[0] += seconds[name][len(calls[name]) - 2]
            return min_distortion_attack(model, x, t, settings=SearchSettings(c_steps=1, max_iter=1), progress=False)
        return attack

    monkeypatch.setattr(peers.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(peers, "min_distortion_attack", lambda model, x, t, **kw: fake("ours")(x, t))
    monkeypatch.setattr(peers, "scipy_lbfgs_attack", lambda model, x, t, **kw: fake("scipy")(x, t))
    monkeypatch.setattr(peers, "foolbox_attack", lambda name, model, x, t: fake(name)(x, t))
    rows = peers.compare_attacks(model, images, targets, scipy_examples=12, settings=SearchSettings())
    runs = peers.TIMED_RUNS
    assert calls["ours"] == [peers.WARMUP_EXAMPLES] + [16] * runs
    assert calls["scipy"] == [peers.WARMUP_EXAMPLES] + [12] * runs
    assert calls["C&W"] == [peers.WARMUP_EXAMPLES, 16]
    assert rows[peers.OURS]["s / 1000 examples"] == pytest.approx(1000 * 2.0 / 16)  # the best of 5, 2 and 3 s
    assert rows["foolbox C&W"]["s / 1000 examples"] == pytest.approx(1000 * peers.TIMING_BUDGET_S / 16)
