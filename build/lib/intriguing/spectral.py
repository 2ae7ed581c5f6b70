"""Frame bounds of a network's layers (§4.3, Table 5), and the power-iteration check of them.

A layer W is bounded above and below by its frame bounds: B_lo·‖x‖ ≤ ‖Wx‖ ≤ B_up·‖x‖ on the
space it acts on. For a fully connected layer they are its extreme singular values. For a
convolution of stride Δ acting on n×n inputs with circular boundary, the operator is block
diagonal in the Fourier domain: at each output frequency ω the block A(ω) gathers the kernel's
transform ŵ at the Δ² input frequencies that alias onto ω,

    A(ω) = (1/Δ) [ŵ_{c,d}(ω + (n/Δ)·k)]  with rows c (output channels), columns (d, k),

and the bounds are the extreme singular values over all ω (§4.3's formula). Grouped and
depthwise convolutions are block diagonal over groups. Batch norm following a layer is folded
into it. :func:`power_iteration` measures the actual operator (``conv2d`` with its zero padding and
stride) to check the formula; see its tests for how far the two boundary conditions may differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LayerBounds", "conv_frame_bounds", "conv_operator", "fold_batchnorm", "frame_bound_table", "linear_frame_bounds",
           "power_iteration"]


@dataclass(frozen=True)
class LayerBounds:
    """Frame bounds of one layer.

    Attributes:
        lower: the smallest of the min(rows, columns) singular values (over all ω for a conv);
            the operator's lower frame bound where it is injective.
        upper: the operator norm, the upper Lipschitz bound.
    """

    lower: float
    upper: float


def linear_frame_bounds(weight: Tensor) -> LayerBounds:
    """Frame bounds of x ↦ Wx for a weight (out, in): its extreme singular values."""
    if weight.ndim != 2:
        raise ValueError(f"a fully connected weight must be (out, in), got {tuple(weight.shape)}")
    s = torch.linalg.svdvals(weight.detach().double())
    return LayerBounds(s.min().item(), s.max().item())


def _aliased_blocks(weight: Tensor, n: int, stride: int) -> Tensor:
    """A(ω) for every ω of kernels (G, C_out, C_in, k, k), one per group: (G, n/Δ, n/Δ, C_out, C_in·Δ²)."""
    groups, c_out, c_in = weight.shape[:3]
    w_hat = torch.fft.fft2(weight.double(), s=(n, n))  # ŵ on the n×n grid
    m = n // stride
    # frequency index ξ = ω + m·k: split each axis of n into (k: Δ, ω: m)
    w_hat = w_hat.view(groups, c_out, c_in, stride, m, stride, m).permute(0, 4, 6, 1, 2, 3, 5)
    return w_hat.reshape(groups, m, m, c_out, c_in * stride * stride) / stride


def conv_frame_bounds(weight: Tensor, input_size: int, stride: int = 1, groups: int = 1) -> LayerBounds:
    """Frame bounds of a convolution by §4.3's Fourier formula (circular boundary).

    Args:
        weight: (C_out, C_in / groups, k, k), as ``nn.Conv2d`` stores it.
        input_size: n, the side of the (square) input the layer sees; rounded up to a multiple of
            ``stride``. The bounds are over the n×n grid of frequencies; a 1×1 kernel's do not depend
            on ω, so one frequency suffices for it.
        stride: Δ.
        groups: as in ``nn.Conv2d``; ``groups == C_in`` is a depthwise convolution.

    Returns:
        The extreme singular values of A(ω) over all ω and groups.
    """
    if weight.ndim != 4 or weight.shape[2] != weight.shape[3]:
        raise ValueError(f"a conv weight must be (C_out, C_in/groups, k, k), got {tuple(weight.shape)}")
    if weight.shape[0] % groups:
        raise ValueError(f"{weight.shape[0]} output channels do not split into {groups} groups")
    k = weight.shape[2]
    n = stride if k == 1 else max(k, -(-input_size // stride) * stride)
    per_group = weight.detach().reshape(groups, -1, *weight.shape[1:])
    s = torch.linalg.svdvals(_aliased_blocks(per_group, n, stride))  # (G, m, m, min(rows, cols))
    return LayerBounds(s.min().item(), s.max().item())


def fold_batchnorm(weight: Tensor, bn: nn.BatchNorm2d | nn.BatchNorm1d) -> Tensor:
    """The weight of a layer followed by ``bn`` in eval mode: each output channel scaled by
    γ/√(var + ε). (The shift does not change the bounds.) (C_out, ...) -> (C_out, ...)."""
    if bn.running_var is None:
        raise ValueError("batch norm without running statistics cannot be folded")
    scale = bn.weight.detach() / (bn.running_var + bn.eps).sqrt()
    return weight.detach() * scale.view(-1, *[1] * (weight.ndim - 1))


def conv_operator(weight: Tensor, stride: int = 1, groups: int = 1, padding: str = "zeros") -> Callable[[Tensor], Tensor]:
    """The linear map of a convolution without bias, as ``conv2d`` applies it with "same" padding
    of k // 2: ``"zeros"`` (what networks use) or ``"circular"`` (the Fourier formula's boundary).

    Args:
        weight: (C_out, C_in / groups, k, k); stride, groups: as in ``nn.Conv2d``.
        padding: ``"zeros"`` or ``"circular"``.

    Returns:
        A function (B, C_in, n, n) -> (B, C_out, m, m), for :func:`power_iteration`.
    """
    if padding not in ("zeros", "circular"):
        raise ValueError(f"unknown padding {padding!r}; choose 'zeros' or 'circular'")
    pad = weight.shape[-1] // 2
    if padding == "zeros":
        return lambda x: F.conv2d(x, weight, stride=stride, padding=pad, groups=groups)
    return lambda x: F.conv2d(F.pad(x, [pad] * 4, mode="circular"), weight, stride=stride, groups=groups)


def power_iteration(operator: Callable[[Tensor], Tensor], input_shape: tuple[int, ...], iterations: int = 100,
                    seed: int = 0) -> float:
    """‖A‖₂ of a linear map A, by power iteration on AᵀA (Aᵀ through autograd).

    Args:
        operator: a linear function of a tensor of ``input_shape`` (no bias).
        input_shape: the shape of its input, e.g. (1, C, n, n).
        iterations: power steps.
        seed: the start vector's seed.
    """
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(input_shape, generator=gen, dtype=torch.float64)
    v /= v.norm()
    norm = 0.0
    for _ in range(iterations):
        v.requires_grad_(True)
        out = operator(v)
        (grad,) = torch.autograd.grad(out, v, out)  # AᵀA v
        norm = grad.norm().sqrt().item()
        v = (grad / grad.norm()).detach()
    return norm


def _size(module: nn.Linear | nn.Conv2d) -> str:
    if isinstance(module, nn.Linear):
        return f"{module.in_features}×{module.out_features}"
    c_out, c_in_group, kh, kw = module.weight.shape
    return f"{c_in_group * module.groups}×{kh}×{kw}×{c_out}" + (f" (groups {module.groups})" if module.groups > 1 else "")


def frame_bound_table(model: nn.Module, input_shape: tuple[int, ...]) -> pd.DataFrame:
    """One row per linear and conv layer of ``model``, in the order a forward pass meets them.

    A batch norm that directly follows a layer (in execution order, with matching channels) is
    folded into it. Each conv is bounded on the input size it sees in a forward pass of
    ``input_shape``.

    Args:
        model: any network of ``nn.Conv2d``, ``nn.Linear`` and batch-norm layers.
        input_shape: one input's shape, e.g. (3, 224, 224) or (1, 28, 28).

    Returns:
        Columns ``Size`` (the paper's notation, in×k×k×out or in×out), ``Stride``, ``Input``
        (the side n the conv sees), ``BN folded``, ``Lower bound`` and ``Upper bound``; indexed by
        the layer's name in the model.
    """
    calls: list[tuple[str, nn.Module, Tensor]] = []
    names = {module: name for name, module in model.named_modules()}
    hooks = [m.register_forward_hook(lambda mod, inp, out: calls.append((names[mod], mod, inp[0])))
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.BatchNorm1d))]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    rows = {}
    for i, (name, module, inp) in enumerate(calls):
        if not isinstance(module, (nn.Linear, nn.Conv2d)):
            continue
        following = calls[i + 1][1] if i + 1 < len(calls) else None
        bn = (following if isinstance(following, (nn.BatchNorm2d, nn.BatchNorm1d))
              and following.num_features == module.weight.shape[0] else None)
        fold = bn is not None
        weight = fold_batchnorm(module.weight, bn) if bn is not None else module.weight.detach()
        if isinstance(module, nn.Linear):
            bounds, stride, side = linear_frame_bounds(weight.cpu()), None, None
        else:
            stride, side = module.stride[0], int(inp.shape[-1])
            bounds = conv_frame_bounds(weight.cpu(), side, stride, module.groups)
        rows[name] = {"Size": _size(module), "Stride": stride, "Input": side, "BN folded": fold,
                      "Lower bound": bounds.lower, "Upper bound": bounds.upper}
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("layer")
    return table.astype({"Stride": "Int64", "Input": "Int64"})
