import math

import pytest
import torch

from intriguing.models import AutoencoderClassifier
from intriguing.sparse_autoencoder import SPARSE_AE, SparseAutoencoderObjective, autograd_loss


def small_autoencoder(codes: int = 6, encoder_bias: float = 0.0) -> AutoencoderClassifier:
    torch.manual_seed(0)
    model = AutoencoderClassifier(codes).double()
    with torch.no_grad():
        model.encoder.bias.fill_(encoder_bias)
    return model


def gradients(model: AutoencoderClassifier) -> list[torch.Tensor]:
    return [p.grad.clone() for p in (*model.encoder.parameters(), *model.decoder.parameters())]


def clear(model: AutoencoderClassifier) -> None:
    for p in model.parameters():
        p.grad = None


@pytest.mark.parametrize("encoder_bias", [0.0, -40.0])  # -40: every code is below 1e-6 and the clamp binds
def test_value_and_gradient_equal_autograd(encoder_bias):
    model = small_autoencoder(encoder_bias=encoder_bias)
    images = torch.rand(7, 1, 28, 28, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    objective = SparseAutoencoderObjective(model, images)
    clear(model)
    by_hand = objective.value_and_gradient()
    ours = gradients(model)
    clear(model)
    reference = autograd_loss(model, images)
    reference.backward()
    assert by_hand.item() == pytest.approx(reference.item(), rel=1e-12)
    assert objective().item() == pytest.approx(reference.item(), rel=1e-12)
    for got, want in zip(ours, gradients(model), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    if encoder_bias < 0:  # where the clamp binds the sparsity penalty passes no gradient
        assert objective._rho_hat.max() < 1e-6


def test_loss_by_hand_with_zero_weights():
    """All weights zero: every code and pixel is σ(0) = ½, so the loss is ½·Σ(½ − x)²/N + β·K·KL(ρ‖½)."""
    model = AutoencoderClassifier(4).double()
    for p in model.parameters():
        torch.nn.init.zeros_(p)
    images = torch.full((3, 784), 0.25, dtype=torch.float64)
    rho = SPARSE_AE.sparsity_target
    kl = rho * math.log(rho / 0.5) + (1 - rho) * math.log((1 - rho) / 0.5)
    expected = 0.5 * 784 * 0.25**2 + SPARSE_AE.sparsity_weight * 4 * kl
    assert SparseAutoencoderObjective(model, images)().item() == pytest.approx(expected, rel=1e-12)


def test_float32_loss_matches_a_float64_sum():
    """The reconstruction error is summed row by row: one float32 norm over the whole matrix was 0.6 % off."""
    model = small_autoencoder(codes=20).float()
    images = torch.rand(20_000, 784, generator=torch.Generator().manual_seed(2))
    exact = autograd_loss(model.double(), images.double()).item()
    assert SparseAutoencoderObjective(model.float(), images)().item() == pytest.approx(exact, rel=1e-5)


def test_bad_input_is_named():
    model = AutoencoderClassifier(4)
    with pytest.raises(ValueError, match="pixels"):
        SparseAutoencoderObjective(model, torch.rand(2, 100))
    with pytest.raises(ValueError, match="at least one image"):
        SparseAutoencoderObjective(model, torch.rand(0, 784))
