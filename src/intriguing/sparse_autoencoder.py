"""The sparse autoencoder's training objective, its value and gradient written by hand into buffers it owns.

AE400-10's autoencoder is the book's longest single training: full-batch L-BFGS on 60,000 images whose
codes (60,000 x 400) and reconstructions (60,000 x 784, 188 MB) autograd would allocate afresh at every
evaluation. glibc serves each allocation of 32 MiB or more with its own ``mmap`` and returns it to the
kernel when it is freed, so every evaluation had the kernel fault in and zero those tensors again page by
page. :class:`SparseAutoencoderObjective` allocates its four large tensors once per training and computes
the same loss and its gradient in them (``benchmarks/sparse_autoencoder.py`` measures both ways).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .models import AutoencoderClassifier
from .norms import squared_norm

__all__ = ["SPARSE_AE", "SparseAutoencoderObjective", "SparseAutoencoderSettings", "autograd_loss"]

_CLAMP = 1e-6  # the average activations are kept in [_CLAMP, 1 - _CLAMP] inside the logarithms


@dataclass(frozen=True)
class SparseAutoencoderSettings:
    """The sparse autoencoder's own objective (the paper does not state it; these are the
    standard settings of the UFLDL sparse-autoencoder recipe for MNIST).

    loss = ½‖x̂ − x‖² (mean over images) + β Σ_j KL(ρ ‖ ρ̂_j) + (λ/2)(‖W_enc‖² + ‖W_dec‖²)
    """

    sparsity_target: float = 0.1
    sparsity_weight: float = 3.0
    weight_decay: float = 3e-3


SPARSE_AE = SparseAutoencoderSettings()


class SparseAutoencoderObjective:
    """:data:`SPARSE_AE`'s loss of ``model``'s encoder and decoder on fixed images.

    x̂ = σ(W_dec σ(W_enc x + b_enc) + b_dec); ρ̂_j is the mean activation of code j over the images,
    clamped to [1e-6, 1 − 1e-6] (the clamp passes no gradient where it binds, as ``torch.clamp``).

    Args:
        model: the autoencoder; its encoder and decoder weights are read at every call.
        images: (N, 1, 28, 28) or (N, 784) in [0, 1], on the model's device; N ≥ 1.
    """

    def __init__(self, model: AutoencoderClassifier, images: Tensor) -> None:
        self.model = model
        self.images = images.flatten(1).contiguous()
        n, pixels = self.images.shape
        codes = model.encoder.out_features
        if pixels != model.encoder.in_features:
            raise ValueError(f"the images have {pixels} pixels; the encoder takes {model.encoder.in_features}")
        if n == 0:
            raise ValueError("the sparse autoencoder's objective needs at least one image")

        def empty(*shape: int) -> Tensor:
            return torch.empty(shape, dtype=self.images.dtype, device=self.images.device)

        self._codes, self._codes_grad = empty(n, codes), empty(n, codes)
        self._recon, self._recon_grad = empty(n, pixels), empty(n, pixels)
        self._rho_hat = empty(codes)  # the codes' mean activations at the last evaluation

    @torch.no_grad()
    def __call__(self) -> Tensor:
        """The loss at the current weights: a scalar tensor."""
        return self._forward()

    @torch.no_grad()
    def value_and_gradient(self) -> Tensor:
        """The loss, with its gradient written to the ``.grad`` of the encoder's and decoder's parameters.

        Returns:
            The loss, a scalar tensor.
        """
        s = SPARSE_AE
        enc, dec = self.model.encoder, self.model.decoder
        loss = self._forward()
        x, a, r, d = self.images, self._codes, self._recon, self._recon_grad
        n = x.shape[0]
        # d = (x̂ − x)/N · x̂(1 − x̂): the gradient at the decoder's pre-activations
        r.addcmul_(r, r, value=-1)
        d.mul_(r).div_(n)
        dec.weight.grad = torch.addmm(dec.weight, d.t(), a, beta=s.weight_decay)
        dec.bias.grad = d.sum(0)
        da = torch.mm(d, dec.weight, out=self._codes_grad)
        # the sparsity penalty's gradient, the same for every image
        rho = s.sparsity_target
        rho_hat = self._rho_hat
        clamped = rho_hat.clamp(_CLAMP, 1 - _CLAMP)
        kl_grad = s.sparsity_weight * ((1 - rho) / (1 - clamped) - rho / clamped)
        kl_grad *= ((rho_hat >= _CLAMP) & (rho_hat <= 1 - _CLAMP)).to(kl_grad.dtype)
        da.add_(kl_grad / n)
        a.addcmul_(a, a, value=-1)
        da.mul_(a)
        enc.weight.grad = torch.addmm(enc.weight, da.t(), x, beta=s.weight_decay)
        enc.bias.grad = da.sum(0)
        return loss

    def _forward(self) -> Tensor:
        s = SPARSE_AE
        enc, dec = self.model.encoder, self.model.decoder
        x = self.images
        a = torch.addmm(enc.bias, x, enc.weight.t(), out=self._codes).sigmoid_()
        r = torch.addmm(dec.bias, a, dec.weight.t(), out=self._recon).sigmoid_()
        d = torch.sub(r, x, out=self._recon_grad)
        reconstruction = 0.5 * _squared_norm(d) / x.shape[0]
        decay = _squared_norm(enc.weight) + _squared_norm(dec.weight)
        sparsity = _sparsity_penalty(torch.mean(a, 0, out=self._rho_hat))
        return reconstruction + sparsity + 0.5 * s.weight_decay * decay


def _squared_norm(m: Tensor) -> Tensor:
    """Σ m² of a matrix without a temporary its size, summed row by row: one ``vector_norm`` over all of a
    (60,000 x 784) float32 matrix was off by 0.6 % (a float64 sum as the reference), the rows' norms by 2e-8."""
    return torch.linalg.vector_norm(m, dim=1).square().sum()


def _sparsity_penalty(rho_hat: Tensor) -> Tensor:
    """β Σ_j KL(ρ ‖ ρ̂_j) of the codes' mean activations (K,), clamped to [_CLAMP, 1 − _CLAMP]."""
    rho, clamped = SPARSE_AE.sparsity_target, rho_hat.clamp(_CLAMP, 1 - _CLAMP)
    kl = (rho * torch.log(rho / clamped) + (1 - rho) * torch.log((1 - rho) / (1 - clamped))).sum()
    return SPARSE_AE.sparsity_weight * kl


def autograd_loss(model: AutoencoderClassifier, images: Tensor) -> Tensor:
    """The same loss written with autograd: the definition :class:`SparseAutoencoderObjective` is tested against.

    Args:
        model: the autoencoder.
        images: (N, 1, 28, 28) or (N, 784) in [0, 1].

    Returns:
        The loss, a scalar tensor that backpropagates to the encoder and decoder.
    """
    flat = images.flatten(1)
    codes = torch.sigmoid(model.encoder(flat))
    recon = torch.sigmoid(model.decoder(codes))
    decay = squared_norm(model.encoder.weight) + squared_norm(model.decoder.weight)
    return 0.5 * squared_norm(recon - flat, 1).mean() + _sparsity_penalty(codes.mean(0)) + 0.5 * SPARSE_AE.weight_decay * decay
