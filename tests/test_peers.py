import pytest
import torch
from torch import nn

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
