"""A box-constrained L-BFGS that runs independently per example, vectorised over the batch.

Each example keeps its own curvature pairs, its own step in a projected backtracking line search
and its own stopping test; all of them move together in one tensor program, on CPU or GPU. The
examples never share a line search or a Hessian estimate (as one ``torch.optim.LBFGS`` over a
summed batch would), so the result for an example does not depend on the others in its batch.

The method is projected L-BFGS with an active set: coordinates at a bound whose gradient points
out of the box are held fixed, the two-loop recursion acts on the rest, and the step is
projected back onto the box before the Armijo test.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["COMPACT_BELOW", "Objective", "box_lbfgs"]

COMPACT_BELOW = 0.75
"""The state is compacted to the running examples when fewer than this share of its rows run."""

Objective = Callable[[Tensor, Tensor], Tensor]
"""``objective(z, index)``: per-example values (k,) at points z (k, ...) of the examples ``index``."""


def _value_and_grad(objective: Objective, z: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    z = z.detach().requires_grad_(True)
    with torch.enable_grad():
        f = objective(z, index)
        (g,) = torch.autograd.grad(f.sum(), z)
    return f.detach(), g.detach()


def box_lbfgs(
    objective: Objective,
    z0: Tensor,
    max_iter: int,
    *,
    lower: float = 0.0,
    upper: float = 1.0,
    memory: int = 10,
    gtol: float = 1e-5,
    ftol: float = 1e-7,
    max_backtracks: int = 20,
) -> Tensor:
    """Minimise, for every example i independently, ``objective`` over the box [lower, upper].

    Args:
        objective: per-example objective; see :data:`Objective`. It is called on subsets of the
            batch (the examples still running), with their indices into the batch.
        z0: (B, ...) starting points inside the box.
        max_iter: iteration cap per example.
        lower, upper: the box.
        memory: curvature pairs kept per example.
        gtol: an example stops when its projected gradient's largest entry is below this.
        ftol: an example stops when an iteration lowers its objective by less than
            ``ftol * max(1, |f|)``, or when its line search finds no decrease.
        max_backtracks: line-search halvings before an example gives up.

    Returns:
        (B, ...) the final points, inside the box.
    """
    if z0.min() < lower or z0.max() > upper:
        raise ValueError(f"starting points must lie in the box [{lower}, {upper}]")
    batch, shape = z0.shape[0], z0.shape
    out = z0.detach().reshape(batch, -1).clone()

    def fun(zs: Tensor, index: Tensor) -> Tensor:
        return objective(zs.view(len(index), *shape[1:]), index)

    # The state of the examples in ``rows``. Finished examples stay in it, frozen, until fewer than
    # COMPACT_BELOW of its rows still run; then the state is compacted to the running ones. This
    # keeps the gathers of the curvature histories rare.
    rows = torch.arange(batch, device=out.device)
    z = out.clone()
    f, g = _value_and_grad(fun, z, rows)
    s_hist = z.new_zeros(memory, batch, z.shape[1])
    y_hist = z.new_zeros(memory, batch, z.shape[1])
    rho = z.new_zeros(memory, batch)
    gamma = 0.1 / g.abs().amax(1).clamp_min(1e-12)  # first step moves a pixel by at most 0.1
    running = torch.ones(batch, dtype=torch.bool, device=z.device)

    for it in range(max_iter):
        n_running = int(running.sum())
        if n_running == 0:
            break
        if n_running < COMPACT_BELOW * len(rows):
            out[rows] = z
            keep = running.nonzero().squeeze(1)
            rows, z, f, g, gamma = rows[keep], z[keep], f[keep], g[keep], gamma[keep]
            s_hist, y_hist, rho = s_hist[:, keep], y_hist[:, keep], rho[:, keep]
            running = running[keep]
        free = ~(((z <= lower) & (g > 0)) | ((z >= upper) & (g < 0)))
        projected = torch.where(free, g, torch.zeros_like(g))
        still = running & (projected.abs().amax(1) > gtol)
        # Two-loop recursion on the free coordinates, newest pair first.
        slots = [(it - 1 - j) % memory for j in range(min(it, memory))]
        q, alphas = projected.clone(), []
        for j in slots:
            a = rho[j] * (s_hist[j] * q).sum(1)
            q -= a[:, None] * y_hist[j]
            alphas.append(a)
        r = gamma[:, None] * q
        for j, a in zip(reversed(slots), reversed(alphas)):
            b = rho[j] * (y_hist[j] * r).sum(1)
            r += (a - b)[:, None] * s_hist[j]
        d = torch.where(free, -r, torch.zeros_like(r))
        uphill = (d * g).sum(1) >= 0
        d[uphill] = -gamma[uphill, None] * projected[uphill]

        # Projected backtracking line search, each example with its own step.
        step = torch.ones(len(rows), device=z.device)
        z_new, f_new, g_new = z.clone(), f.clone(), g.clone()
        searching = still.clone()
        for _ in range(max_backtracks):
            s_pos = searching.nonzero().squeeze(1)
            if s_pos.numel() == 0:
                break
            if s_pos.numel() == len(rows):  # everyone: no gathers
                cand = (z + step[:, None] * d).clamp(lower, upper)
                fc, gc = _value_and_grad(fun, cand, rows)
                decrease = (g * (cand - z)).sum(1)
                ok = (fc <= f + 1e-4 * decrease) & (decrease < 0)
            else:
                cand = (z[s_pos] + step[s_pos, None] * d[s_pos]).clamp(lower, upper)
                fc, gc = _value_and_grad(fun, cand, rows[s_pos])
                decrease = (g[s_pos] * (cand - z[s_pos])).sum(1)
                ok = (fc <= f[s_pos] + 1e-4 * decrease) & (decrease < 0)
            good = s_pos[ok]
            z_new[good], f_new[good], g_new[good] = cand[ok], fc[ok], gc[ok]
            searching[good] = False
            step[s_pos[~ok]] *= 0.5
        moved = still & ~searching

        # Curvature pairs, kept only where s·y > 0 so every example's inverse Hessian stays positive.
        s, y = z_new - z, g_new - g
        sy, yy = (s * y).sum(1), (y * y).sum(1)
        keep_pair = moved & (sy > 1e-10 * yy.clamp_min(1e-30))
        slot = it % memory
        s_hist[slot] = torch.where(keep_pair[:, None], s, torch.zeros_like(s))
        y_hist[slot] = torch.where(keep_pair[:, None], y, torch.zeros_like(y))
        rho[slot] = torch.where(keep_pair, 1 / sy.clamp_min(1e-30), torch.zeros_like(sy))
        gamma = torch.where(keep_pair, sy / yy.clamp_min(1e-30), gamma)

        small_gain = (f - f_new) <= ftol * f.abs().clamp_min(1.0)
        z, f, g = z_new, f_new, g_new
        running = moved & ~small_gain
    out[rows] = z
    return out.view(shape)
