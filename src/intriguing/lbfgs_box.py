"""A box-constrained L-BFGS that runs independently per example, vectorised over the batch.

Each example keeps its own curvature pairs, its own step in a projected backtracking line search
and its own stopping test; all of them move together in one tensor program, on CPU or GPU. The
examples never share a line search or a Hessian estimate (as one ``torch.optim.LBFGS`` over a
summed batch would), so the result for an example does not depend on the others in its batch, up to
the rounding of the objective: a matrix product in it may round a row differently with the number
of rows it shares the product with, and a discrete choice here (the Armijo test, the stopping
tests) can turn that rounding into a different path. :class:`intriguing.attacks.SearchSettings`
says how much that moved results, and how computing the network in float64 removes it.

The method is projected L-BFGS with an active set: coordinates at a bound whose gradient points
out of the box are held fixed, the two-loop recursion acts on the rest, and the step is
projected back onto the box before the Armijo test. A step that fails the test is shrunk to the minimiser
of the quadratic through the objective, its first-order change and the value at the failed step, kept within
0.1-0.5 of the failed step (Nocedal & Wright's safeguarded backtracking; ``"interpolated"``), or halved
(``"halving"``, the book's search before commit 71944e3). On 1,000 MNIST test images of N100-100-10 at the book's
search settings, interpolation called the network 270 times where halving called it 412, in 0.88x the time,
with the mean distortion 0.05210 against 0.05214 (``benchmarks/search_variants.py``, 2 CPU cores, 2026-12-05).

An objective gives per-example values whose gradient autograd takes, or an :class:`Evaluation` with the gradient
and any per-example values (``aux``) it wants back at the final points; a caller that already knows the objective
at the starting points passes it as ``start`` and saves that evaluation. Rows are gathered with ``index_select``:
on 2 CPU cores advanced indexing took 127 us to gather 900 rows of a (1000, 784) float32 tensor, ``index_select``
34 us, the same bits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["BACKTRACKINGS", "COMPACT_BELOW", "Evaluation", "Minimisation", "Objective", "box_lbfgs"]

BACKTRACKINGS = ("interpolated", "halving")
"""How a step that fails the Armijo test is shrunk: the first is the default."""
COMPACT_BELOW = 0.75
"""The state is compacted to the running examples when fewer than this share of its rows run."""


class Evaluation(NamedTuple):
    """An objective at k points: ``f`` (k,) its values, ``g`` (k, n) their gradients (the points flattened),
    ``aux`` (k, a) whatever else the objective reports there (a = 0: nothing)."""

    f: Tensor
    g: Tensor
    aux: Tensor


Objective = Callable[[Tensor, Tensor], "Tensor | Evaluation"]
"""``objective(z, index)`` at points z (k, ...) of the examples ``index`` (sorted, distinct indices into the
batch; k equal to the batch size means every example, in order), ``z`` a leaf that requires grad: either the
per-example values (k,), whose gradient autograd gives, or an :class:`Evaluation` with the gradient (shaped like
``z`` or flattened) and any per-example values to report."""


class Minimisation(NamedTuple):
    """What :func:`box_lbfgs` found: ``z`` (B, ...) the final points, ``at`` the objective there."""

    z: Tensor
    at: Evaluation


def _evaluate(objective: Objective, z: Tensor, index: Tensor) -> Evaluation:
    z = z.detach().requires_grad_(True)
    with torch.enable_grad():
        out = objective(z, index)
        if isinstance(out, Evaluation):
            return Evaluation(out.f.detach(), out.g.detach().reshape(len(index), -1), out.aux.detach())
        (g,) = torch.autograd.grad(out.sum(), z)
    return Evaluation(out.detach(), g.detach(), out.new_zeros(len(index), 0))


def _free_mask(z: Tensor, g: Tensor, lower: float, upper: float) -> Tensor:
    """1.0 where a coordinate may move, 0.0 where it sits at a bound and its gradient points out of
    the box (z at ``lower`` with g > 0, or at ``upper`` with g < 0); z must lie in the box.

    Written in float arithmetic: side = sign(upper − z) − sign(z − lower) is 1 at the lower bound, −1 at
    the upper and 0 inside, so side · sign(g) is 1 exactly where the coordinate is blocked. On a CPU,
    comparisons, boolean logic and torch.where over a whole batch cost several times more.
    """
    side = torch.sign(z - lower) if lower != 0 else torch.sign(z)
    side = torch.sign(upper - z).sub_(side)
    return side.mul_(torch.sign(g)).clamp_(min=0).neg_().add_(1)


def _shrink(f: Tensor, f_step: Tensor, decrease: Tensor, backtracking: str) -> Tensor | float:
    """The factor by which a failed step shrinks, per example: ``f`` the objective at the start, ``f_step`` at the
    failed step, ``decrease`` the first-order change g·(z_step − z) there (negative along a descent path)."""
    if backtracking == "halving":
        return 0.5
    curvature = f_step - f - decrease  # > 0 where the Armijo test failed on a descent path
    factor = (-decrease / (2 * curvature)).nan_to_num(0.5, 0.5, 0.5).clamp(0.1, 0.5)
    return torch.where(decrease < 0, factor, torch.full_like(factor, 0.5))


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
    backtracking: str = BACKTRACKINGS[0],
    start: Evaluation | None = None,
    min_curvature: Tensor | None = None,
) -> Minimisation:
    """Minimise, for every example i independently, ``objective`` over the box [lower, upper].

    Args:
        objective: per-example objective; see :data:`Objective`. It is called on subsets of the
            batch (the examples still running), with their indices into the batch.
        z0: (B, ...) starting points inside the box.
        start: the objective at ``z0`` where the caller knows it (every example's, f (B,), g (B, n), aux (B, a));
            None: evaluated here.
        max_iter: iteration cap per example.
        lower, upper: the box.
        memory: curvature pairs kept per example.
        gtol: an example stops when its projected gradient's largest entry is below this.
        ftol: an example stops when an iteration lowers its objective by less than
            ``ftol * max(1, |f|)``, or when its line search finds no decrease.
        max_backtracks: line-search trials in one iteration before an example gives up.
        backtracking: one of :data:`BACKTRACKINGS` (see the module's docstring).
        min_curvature: (B,) a curvature each example's objective has along every direction, where the caller knows
            one (2c for c‖z − x‖² plus a convex term). The first step, along the projected gradient g, moves a
            coordinate by at most 0.1 and, given this, goes at most to g / min_curvature: the line's minimum where
            the objective's curvature along g is no more than that.

    Returns:
        The final points (B, ...), inside the box, and the objective there: its ``aux`` is the one reported with
        each example's final point (``start``'s where an example never moved).
    """
    if backtracking not in BACKTRACKINGS:
        raise ValueError(f"unknown backtracking {backtracking!r}; choose one of {BACKTRACKINGS}")
    if z0.min() < lower or z0.max() > upper:
        raise ValueError(f"starting points must lie in the box [{lower}, {upper}]")
    batch, shape = z0.shape[0], z0.shape
    out = z0.detach().reshape(batch, -1).clone()

    def fun(zs: Tensor, index: Tensor) -> Tensor | Evaluation:
        return objective(zs.view(len(index), *shape[1:]), index)

    # The state of the examples in ``rows``. Finished examples stay in it, frozen, until fewer than
    # COMPACT_BELOW of its rows still run; then the state is compacted to the running ones. This
    # keeps the gathers of the curvature histories rare.
    rows = torch.arange(batch, device=out.device)
    z = out.clone()
    if start is None:
        start = _evaluate(fun, z, rows)
    elif start.f.shape != (batch,) or start.g.shape != z.shape or start.aux.shape[0] != batch:
        raise ValueError(f"start must give f ({batch},), g {tuple(z.shape)} and aux ({batch}, a), got "
                         f"{tuple(start.f.shape)}, {tuple(start.g.shape)} and {tuple(start.aux.shape)}")
    f, g, aux = start
    out_f, out_g, out_aux = f.clone(), g.clone(), aux.clone()
    s_hist = z.new_zeros(memory, batch, z.shape[1])
    y_hist = z.new_zeros(memory, batch, z.shape[1])
    rho = z.new_zeros(memory, batch)
    gamma = 0.1 / g.abs().amax(1).clamp_min(1e-12)  # first step moves a pixel by at most 0.1
    if min_curvature is not None:  # ... and goes no further than the line's minimum where that curvature is all
        gamma = torch.minimum(gamma, 1 / min_curvature)
    running = torch.ones(batch, dtype=torch.bool, device=z.device)

    for it in range(max_iter):
        n_running = int(running.sum())
        if n_running == 0:
            break
        if n_running < COMPACT_BELOW * len(rows):
            out[rows], out_f[rows], out_g[rows], out_aux[rows] = z, f, g, aux
            keep = running.nonzero().squeeze(1)
            rows, f, gamma, aux = rows[keep], f[keep], gamma[keep], aux[keep]
            z, g = z.index_select(0, keep), g.index_select(0, keep)
            s_hist, y_hist, rho = s_hist[:, keep], y_hist[:, keep], rho[:, keep]
            running = running[keep]
        free = _free_mask(z, g, lower, upper)
        projected = g * free
        still = running & (projected.abs().amax(1) > gtol)
        # Two-loop recursion on the free coordinates, newest pair first.
        slots = [(it - 1 - j) % memory for j in range(min(it, memory))]
        q, alphas = projected.clone(), []
        for j in slots:
            a = rho[j] * torch.linalg.vecdot(s_hist[j], q)
            q.addcmul_(y_hist[j], a[:, None], value=-1)
            alphas.append(a)
        r = gamma[:, None] * q
        for j, a in zip(reversed(slots), reversed(alphas)):
            b = rho[j] * torch.linalg.vecdot(y_hist[j], r)
            r.addcmul_(s_hist[j], (a - b)[:, None])
        d = r.mul_(free).neg_()
        uphill = torch.linalg.vecdot(d, g) >= 0
        if bool(uphill.any()):
            d[uphill] = -gamma[uphill, None] * projected[uphill]

        # Projected backtracking line search, each example with its own step.
        step = z.new_ones(len(rows))
        z_new: Tensor | None = None  # copied from z only when some examples need another step
        f_new, g_new, aux_new = f, g, aux
        searching = still.clone()
        for _ in range(max_backtracks):
            s_pos = searching.nonzero().squeeze(1)
            if s_pos.numel() == 0:
                break
            if s_pos.numel() == len(rows):  # everyone: no gathers
                cand = (z + step[:, None] * d).clamp(lower, upper)
                fc, gc, ac = _evaluate(fun, cand, rows)
                decrease = (g * (cand - z)).sum(1)
                f_tried = f
                ok = (fc <= f + 1e-4 * decrease) & (decrease < 0)
                if bool(ok.all()):  # the usual case: every example takes its full step
                    z_new, f_new, g_new, aux_new = cand, fc, gc, ac
                    searching.zero_()
                    break
            else:
                z_from = z.index_select(0, s_pos)
                cand = (z_from + step[s_pos, None] * d.index_select(0, s_pos)).clamp(lower, upper)
                fc, gc, ac = _evaluate(fun, cand, rows[s_pos])
                decrease = (g.index_select(0, s_pos) * (cand - z_from)).sum(1)
                f_tried = f[s_pos]
                ok = (fc <= f_tried + 1e-4 * decrease) & (decrease < 0)
            if z_new is None:
                z_new, f_new, g_new, aux_new = z.clone(), f.clone(), g.clone(), aux.clone()
            taken = ok.nonzero().squeeze(1)
            good = s_pos[taken]
            z_new.index_copy_(0, good, cand.index_select(0, taken))
            g_new.index_copy_(0, good, gc.index_select(0, taken))
            f_new[good], aux_new[good] = fc[taken], ac[taken]
            searching[good] = False
            failed = ~ok
            step[s_pos[failed]] *= _shrink(f_tried[failed], fc[failed], decrease[failed], backtracking)
        if z_new is None:  # nobody moved
            z_new = z
        moved = still & ~searching

        # Curvature pairs, kept only where s·y > 0 so every example's inverse Hessian stays positive.
        s, y = z_new - z, g_new - g
        sy, yy = (s * y).sum(1), (y * y).sum(1)
        keep_pair = moved & (sy > 1e-10 * yy.clamp_min(1e-30))
        slot, keep = it % memory, keep_pair.to(z.dtype)[:, None]
        torch.mul(s, keep, out=s_hist[slot])
        torch.mul(y, keep, out=y_hist[slot])
        rho[slot] = torch.where(keep_pair, 1 / sy.clamp_min(1e-30), torch.zeros_like(sy))
        gamma = torch.where(keep_pair, sy / yy.clamp_min(1e-30), gamma)

        small_gain = (f - f_new) <= ftol * f.abs().clamp_min(1.0)
        z, f, g, aux = z_new, f_new, g_new, aux_new
        running = moved & ~small_gain
    out[rows], out_f[rows], out_g[rows], out_aux[rows] = z, f, g, aux
    return Minimisation(out.view(shape), Evaluation(out_f, out_g, out_aux))
