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

from typing import Callable

import torch
from torch import Tensor

__all__ = ["Objective", "box_lbfgs"]

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
    z = z0.detach().reshape(batch, -1).clone()
    everyone = torch.arange(batch, device=z.device)

    def fun(zs: Tensor, index: Tensor) -> Tensor:
        return objective(zs.view(len(index), *shape[1:]), index)

    f, g = _value_and_grad(fun, z, everyone)
    s_hist = z.new_zeros(memory, batch, z.shape[1])
    y_hist = z.new_zeros(memory, batch, z.shape[1])
    rho = z.new_zeros(memory, batch)
    gamma = 0.1 / g.abs().amax(1).clamp_min(1e-12)  # first step moves a pixel by at most 0.1
    running = torch.ones(batch, dtype=torch.bool, device=z.device)

    for it in range(max_iter):
        idx = running.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        zi, gi, fi = z[idx], g[idx], f[idx]
        free = ~(((zi <= lower) & (gi > 0)) | ((zi >= upper) & (gi < 0)))
        projected = torch.where(free, gi, torch.zeros_like(gi))
        still = projected.abs().amax(1) > gtol
        # Two-loop recursion on the free coordinates, newest pair first. The running examples'
        # histories are gathered once (no copy at all while every example still runs).
        everyone_runs = idx.numel() == batch
        s_run, y_run, rho_run = (s_hist, y_hist, rho) if everyone_runs else (s_hist[:, idx], y_hist[:, idx],
                                                                             rho[:, idx])
        slots = [(it - 1 - j) % memory for j in range(min(it, memory))]
        q, alphas = projected.clone(), []
        for j in slots:
            a = rho_run[j] * (s_run[j] * q).sum(1)
            q -= a[:, None] * y_run[j]
            alphas.append(a)
        r = gamma[idx, None] * q
        for j, a in zip(reversed(slots), reversed(alphas)):
            b = rho_run[j] * (y_run[j] * r).sum(1)
            r += (a - b)[:, None] * s_run[j]
        d = torch.where(free, -r, torch.zeros_like(r))
        uphill = (d * gi).sum(1) >= 0
        d[uphill] = -gamma[idx[uphill], None] * projected[uphill]

        # Projected backtracking line search, each example with its own step.
        step = torch.ones(len(idx), device=z.device)
        z_new, f_new, g_new = zi.clone(), fi.clone(), gi.clone()
        searching = still.clone()
        for _ in range(max_backtracks):
            s_pos = searching.nonzero().squeeze(1)
            if s_pos.numel() == 0:
                break
            cand = (zi[s_pos] + step[s_pos, None] * d[s_pos]).clamp(lower, upper)
            fc, gc = _value_and_grad(fun, cand, idx[s_pos])
            decrease = (gi[s_pos] * (cand - zi[s_pos])).sum(1)
            ok = (fc <= fi[s_pos] + 1e-4 * decrease) & (decrease < 0)
            good = s_pos[ok]
            z_new[good], f_new[good], g_new[good] = cand[ok], fc[ok], gc[ok]
            searching[good] = False
            step[s_pos[~ok]] *= 0.5
        moved = still & ~searching

        # Curvature pairs, kept only where s·y > 0 so every example's inverse Hessian stays positive.
        s, y = z_new - zi, g_new - gi
        sy, yy = (s * y).sum(1), (y * y).sum(1)
        keep = moved & (sy > 1e-10 * yy.clamp_min(1e-30))
        slot = it % memory
        s_hist[slot, idx] = torch.where(keep[:, None], s, torch.zeros_like(s))
        y_hist[slot, idx] = torch.where(keep[:, None], y, torch.zeros_like(y))
        rho[slot, idx] = torch.where(keep, 1 / sy.clamp_min(1e-30), torch.zeros_like(sy))
        gamma[idx[keep]] = (sy / yy.clamp_min(1e-30))[keep]

        small_gain = (fi - f_new) <= ftol * fi.abs().clamp_min(1.0)
        z[idx], f[idx], g[idx] = z_new, f_new, g_new
        running[idx] = moved & ~small_gain
    return z.view(shape)
