"""D(x, l): the paper's minimum-distortion search (§4.1), batched, and the exact optimum for linear models.

For each image x and target label l, :func:`min_distortion_attack` minimises

    c · ‖x' − x‖² + CE(f(x'), l)    subject to x' ∈ [0, 1]^m

with the per-example box-constrained L-BFGS of :mod:`intriguing.lbfgs_box`, and searches c per
example. A larger c weights the distortion more, so the search wants the *largest* c whose
minimiser is still classified as l (§4.1 states it as the minimum c; with c on |r| that is
backwards). The smallest successful x' seen at any iterate of any c is kept.

:func:`exact_linear_attack` solves the same problem exactly for a linear softmax model: a convex
quadratic programme whose 9-variable dual is solved per example.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import cache
from .data import N_CLASSES, check_images
from .hardware import device
from .lbfgs_box import BACKTRACKINGS, Evaluation, box_lbfgs
from .norms import squared_norm

__all__ = ["C_RANGE", "C_UPDATES", "FIRST_STEPS", "PRECISIONS", "RESTARTS", "AttackResult", "CSearch", "RowwiseModel",
           "SearchSettings", "check_targets", "classified_as", "default_batch_size", "exact_linear_attack", "in_precision",
           "min_distortion_attack", "random_targets", "rms_distortion", "target_lead"]


PRECISIONS = ("float64", "float32")
C_UPDATES = ("illinois", "bisection")
"""How :class:`CSearch` moves c inside a bracket: the first is the default."""
RESTARTS = ("carried", "evaluated")
"""How a c step learns the objective where it starts (see :class:`SearchSettings`): the first is the default."""
FIRST_STEPS = ("distortion", "pixel")
"""How far a c step's first trial step may go (see :class:`SearchSettings`): the first is the default."""
_LEAD, _CE = 0, 1
"""The columns of the search objective's ``aux``: the target's lead (:func:`target_lead`) and the cross-entropy."""
C_RANGE = (1e-30, 1e30)
"""The c a search may reach: float32 represents it, and c · ‖r‖² neither underflows nor overflows."""


@dataclass(frozen=True)
class SearchSettings:
    """The settings of the minimum-distortion search, one frozen value per use (MNIST, ImageNet).

    Attributes:
        c_steps: evaluations of c per example (at least 1). c starts at ``c_init``, moves up or down by
            ``first_c_factor``, then by factors of 10 until a success and a failure bracket it, then inside
            the bracket (``c_update``).
        c_init: the first c (> 0).
        first_c_factor: the factor of c's first move from ``c_init`` (> 1); later moves before the bracket are by 10.
            For the MNIST networks c's answer lies within a factor of a few of 1 (N100-100-10's 1,000 test images:
            median 2.8, 90 % below 5.8), where a first c of 1 and moves by 10 bracket it within a factor of 10.
            Started at 2 and moved first by 3 (the defaults), the search brackets it within a factor of 3 where it
            lies between 2/3 and 6, and one step later otherwise, as tightly as by 10 (c = 2, 2/3, 1/15, ...). The
            first c step, from x itself, is the dearest (16 of N100-100-10's 37 network rows per example at c = 1),
            and it converges in fewer iterations at a larger c. On 1,000 test images at the book's settings
            (``benchmarks/search_variants.py --setting c_start`` compares the four), the network rows
            of a search, and the mean distortion, with c_init and first_c_factor at (1, 10), (1, 3), (2, 3), (3, 3)
            (2 CPU cores, 2026-12-06):

            | network | (1, 10) | (1, 3) | (2, 3) | (3, 3) |
            |---|---|---|---|---|
            | N100-100-10 | 37,029 0.052082 | 34,073 0.052082 | 28,950 0.052090 | 27,851 0.052085 |
            | N200-200-10 | 35,898 0.053743 | 32,472 0.053745 | 26,790 0.053741 | 26,377 0.053738 |
            | softmax1 | 21,964 0.049470 | 19,009 0.049472 | 19,278 0.049505 | 21,148 0.049491 |
            | softmax3 | 13,543 0.115901 | 12,809 0.115955 | 14,075 0.115749 | 14,442 0.115921 |
            | AE400-10 | 34,324 0.080518 | 28,672 0.080508 | 29,726 0.080496 | 36,449 0.080525 |
            | Conv | 57,135 0.069533 | 51,185 0.069563 | 55,739 0.069600 | 61,861 0.069538 |
            | all six | 199,893 | 178,220 | 174,558 | 188,128 |

            (2, 3) searched N100-100-10 in 0.78x the time of (1, 10) (best of 3: 0.393 s against 0.503; (1, 3)
            0.443 s). The pools' search and EfficientNet-Lite0's keep (1, 10): §4.2's pools are unchanged, and
            EfficientNet-Lite0's c lies 1-2 decades above 1 (see :func:`intriguing.profiles.efficientnet_search`).
        bracket_tol: an example's search over c ends early once its bracket is this tight: once
            the smallest failed c is within a factor 1 + ``bracket_tol`` of the largest
            successful one (0: every example runs all ``c_steps``).
        max_iter: box-L-BFGS iterations per c (at least 1).
        memory: curvature pairs per example (at least 1).
        tol: an example's L-BFGS run for one c stops when an iteration lowers its objective by
            less than ``tol`` relative, or its projected gradient falls below ``tol``.
        margin: an image counts as classified as its target only when the target's logit leads
            every other by at least this much (see :func:`classified_as`).
        logit_scale: the loss is CE(logit_scale · f(x'), l). 1 is the paper's objective; a larger
            value sharpens the cross-entropy's soft maximum towards the hard margin, whose
            minimiser approaches the closest point of the target region.
        network_precision: ``"float64"`` or ``"float32"``, the arithmetic of the network during the
            search (its own weights are left as they are); the search's own state is float32. A
            float32 matrix product can round a row differently with the number of rows it shares
            the product with (on some BLAS kernels), and the search's discrete choices (the Armijo
            test, the stopping tests, the margin, the bracket on c) can turn that rounding into
            another path, so an example's result depended on its batch: with the network in
            float32, 430 of 500 smoke test images of N100-100-10 changed between batches of 1000
            and 4 (up to 0.7 % each, the mean by 3e-5; on another machine up to 1.9 %). With the
            network in float64 its rounding differences vanish when the logits and gradients are
            rounded to the search's float32: none of the 500 changed at batches 100, 37 and 4
            (``benchmarks/batching_benchmark.py`` measures both). On 2 CPU cores it costs 1.4x the
            float32 search's time (the whole search in float64 cost 2x). float32 is what the
            ImageNet network's convolutions need.
        backtracking: how the line search shrinks a step that fails its Armijo test, one of
            :data:`intriguing.lbfgs_box.BACKTRACKINGS`: ``"interpolated"`` (the default) or ``"halving"``
            (the search before commit 71944e3; the module's docstring compares them).
        c_update: how c moves once a success and a failure bracket it, one of :data:`C_UPDATES`:
            ``"illinois"`` (the default), regula falsi in log c on how far the minimiser's target leads,
            Illinois-modified, or ``"bisection"`` in log c (the search before commit e284053); see :class:`CSearch`.
            On 1,000 test images at the book's settings (``benchmarks/search_variants.py --setting c_update``,
            2 CPU cores, 2026-12-05), Illinois called N100-100-10 254 times on 53,608 rows where bisection
            called it 270 times on 60,507, in 0.91x the time, at a mean distortion of 0.05208 against 0.05210
            (N200-200-10: 0.91x the time, 0.05374 against 0.05377). With the pools' 4 c steps it found larger
            distortions (0.05314 against 0.05294 on N100-100-10): the pools keep bisection.
        restart: how a c step learns the objective at its starting point, one of :data:`RESTARTS`: ``"carried"``
            (the default) from what the search already computed there: where the last c step succeeded, its
            minimiser's cross-entropy, the target's lead and gradient, the gradient plus 2(c_new − c_old)(z − x)
            (equal to a fresh evaluation's up to rounding); where it failed, the best point's own, kept when it
            was found; so no c step after the first calls the network at its start, nor once more at its end
            for the lead. ``"evaluated"`` (the search before this field) calls the network at both. On 1,000 test
            images at the book's settings (``benchmarks/search_variants.py --setting restart``, 2 CPU cores,
            2026-12-05), carried restarts gave N100-100-10 38,371 rows where fresh evaluations gave 53,608, in 0.96x
            the time, and N200-200-10 37,102 rows against 52,284 in 0.89x the time, at the same mean distortions to
            five digits (0.052082 and 0.053742). The pools' search (float32, 4 c steps) gained nothing (0.356 s
            against 0.354 s on N100-100-10) and keeps ``"evaluated"``, so §4.2's pools are unchanged.
        first_step: how far the first trial step of a c step may go along the projected gradient g, one of
            :data:`FIRST_STEPS`: ``"pixel"`` (the search before this field) moves no pixel by more than 0.1;
            ``"distortion"`` (the default) also goes no further than g / 2c, the line's minimum were the
            distortion term c‖z − x‖² all the objective's curvature (the cross-entropy's adds to it where it is
            convex). A step past that minimum fails the Armijo test and costs a network call to backtrack: with c
            in the thousands a 0.1-pixel step overshoots many times over. On 1,000 test images at the book's
            settings (``benchmarks/search_variants.py --setting first_step``, 2 CPU cores, 2026-12-05), bounded by
            the distortion the search called N100-100-10 196 times where the pixel bound called it 235 (106,707
            tensor operations against 120,765), in 0.98x the time, and N200-200-10 168 times against 200 in 0.97x
            the time, at the same mean distortions to five digits (0.05208 and 0.05374). The pools' search gained
            as little (0.98x and 0.96x the time, mean distortions 0.05296 against 0.05294 and 0.05463 against
            0.05462) and keeps ``"pixel"``, so §4.2's pools are unchanged.
    """

    c_steps: int = 10
    c_init: float = 2.0
    first_c_factor: float = 3.0
    bracket_tol: float = 0.02
    max_iter: int = 50
    memory: int = 3
    tol: float = 1e-3
    margin: float = 1e-3
    logit_scale: float = 1.0
    network_precision: str = "float64"
    backtracking: str = BACKTRACKINGS[0]
    c_update: str = "illinois"
    restart: str = RESTARTS[0]
    first_step: str = FIRST_STEPS[0]

    def __post_init__(self) -> None:
        for name in ("c_steps", "max_iter", "memory"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        for name in ("c_init", "first_c_factor", "tol", "logit_scale", "margin", "bracket_tol"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number, got {value!r}")
        for name in ("c_init", "tol", "logit_scale"):
            value = getattr(self, name)
            if not 0 < value < math.inf:
                raise ValueError(f"{name} must be a positive finite number, got {value}")
        if not 1 < self.first_c_factor < math.inf:
            raise ValueError(f"first_c_factor must be a finite number above 1, got {self.first_c_factor}")
        for name in ("margin", "bracket_tol"):
            if not 0 <= getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be a finite non-negative number, got {getattr(self, name)}")
        # c moves at most c_steps - 1 times: once by first_c_factor, then by factors of 10
        reach = 1.0 if self.c_steps == 1 else self.first_c_factor * 10.0 ** (self.c_steps - 2)
        if not C_RANGE[0] <= self.c_init / reach or not self.c_init * reach <= C_RANGE[1]:
            raise ValueError(f"c_init {self.c_init:g} with {self.c_steps} c steps can reach c outside "
                             f"[{C_RANGE[0]:g}, {C_RANGE[1]:g}], where float32 under- or overflows")
        for name, choices in (("network_precision", PRECISIONS), ("backtracking", BACKTRACKINGS),
                              ("c_update", C_UPDATES), ("restart", RESTARTS), ("first_step", FIRST_STEPS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")

    def describe(self) -> str:
        """Three short lines: the c steps and iterations, the other numbers, then how steps and c move."""
        scale = "" if self.logit_scale == 1 else f", logits ×{self.logit_scale:g}"
        early = "" if self.bracket_tol == 0 else f" (or until c is within ×{1 + self.bracket_tol:g})"
        return (f"{self.c_steps} c steps{early} from c = {self.c_init:g}, {self.max_iter} L-BFGS iterations each\n"
                f"c's first move ×{self.first_c_factor:g}, memory {self.memory}, tol {self.tol:g}, margin {self.margin:g}"
                f"{scale}, network in {self.network_precision}\n"
                f"{self.backtracking} backtracking, c by {self.c_update}, restarts {self.restart}, "
                f"first steps by {self.first_step}")

    def key(self) -> dict[str, float | str]:
        """The settings as a cache key: every field but those at the value that leaves the search as
        it was before the field existed (logit scale 1, no early end of the c search, a float32 network,
        halving backtracking, c by bisection, restarts evaluated, first steps by the pixel, c's first move by 10)."""
        fields = asdict(self)
        for name, neutral in (("logit_scale", 1), ("bracket_tol", 0), ("network_precision", "float32"),
                              ("backtracking", "halving"), ("c_update", "bisection"), ("restart", "evaluated"),
                              ("first_step", "pixel"), ("first_c_factor", 10.0)):
            if fields[name] == neutral:
                del fields[name]
        return fields


@dataclass
class AttackResult:
    """The outcome of a minimum-distortion search.

    Attributes:
        adversarial: (N, C, H, W) in [0, 1]; the best image found, or x itself where none was.
        success: (N,) bool, whether ``adversarial`` is classified as the target.
        distortion: (N,) RMS distortion √(Σ(x' − x)²/n) of ``adversarial`` (0 where failed).
        c: (N,) the largest c whose minimiser was classified as the target (0 if none).
    """

    adversarial: Tensor
    success: Tensor
    distortion: Tensor
    c: Tensor


class RowwiseModel(nn.Module):
    """A model whose logits depend on which example a row is, e.g. a stack of networks, each example
    searched against its own (:class:`intriguing.adversarial_training.StackedNetworkAbove`).
    :func:`min_distortion_attack` calls it as ``model(z, rows)``: ``z`` (R, ...) the points of the examples
    ``rows`` (R,) int64, sorted indices into the images the search was given."""

    def forward(self, z: Tensor, rows: Tensor) -> Tensor:  # pragma: no cover - an interface
        raise NotImplementedError


def rms_distortion(adversarial: Tensor, images: Tensor) -> Tensor:
    """√(Σ(x' − x)²/n) per image, n the number of pixels (§4.2). Shapes (N, ...) -> (N,)."""
    return (adversarial - images).flatten(1).pow(2).mean(1).sqrt()


def random_targets(labels: Tensor, seed: int = 0, n_classes: int = N_CLASSES) -> Tensor:
    """A uniformly random wrong label for each true label, seeded. (N,) int64 -> (N,) int64."""
    gen = torch.Generator().manual_seed(seed)
    offset = torch.randint(1, n_classes, labels.shape, generator=gen)
    return (labels.cpu() + offset) % n_classes


def target_lead(logits: Tensor, targets: Tensor) -> Tensor:
    """How far each row of ``logits`` (B, K) puts its target (B,) ahead of every other class: (B,), negative
    where another class leads."""
    target_logit = logits.gather(1, targets.view(-1, 1)).squeeze(1)
    others = logits.scatter(1, targets.view(-1, 1), float("-inf")).max(1).values
    return target_logit - others


def classified_as(logits: Tensor, targets: Tensor, margin: float) -> Tensor:
    """Whether each row of ``logits`` (B, K) puts its target (B,) ahead of every other class by at
    least ``margin``. A margin keeps a success a success however the images are later batched: an
    exact tie of two logits can fall either way with the summation order of another batch size."""
    return target_lead(logits, targets) >= margin


def check_targets(images: Tensor, targets: Tensor, labels: Tensor | None, n_classes: int = N_CLASSES) -> None:
    """Raise ``ValueError`` unless ``images`` (N, C, H, W) are valid images in [0, 1] and ``targets``
    (N,) are int64 labels in 0..n_classes-1, none equal to its true label in ``labels`` (N,)."""
    check_images(images, shape=None)
    if not isinstance(targets, Tensor) or targets.shape != (len(images),):
        raise ValueError(f"targets must have shape ({len(images)},), one per image, got "
                         f"{tuple(getattr(targets, 'shape', ())) if isinstance(targets, Tensor) else type(targets).__name__}")
    if labels is not None and (not isinstance(labels, Tensor) or labels.shape != (len(images),)):
        raise ValueError(f"labels must have shape ({len(images)},), one per image, got "
                         f"{tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__}")
    if targets.dtype != torch.int64 or (len(targets) and (targets.min() < 0 or targets.max() >= n_classes)):
        raise ValueError(f"targets must be int64 labels in 0..{n_classes - 1}")
    if labels is not None and (targets.cpu() == labels.cpu()).any():
        first = int((targets.cpu() == labels.cpu()).nonzero()[0])
        raise ValueError(f"target equals the true label for example {first}: D(x, f(x)) = x is trivial")


def min_distortion_attack(
    model: nn.Module,
    images: Tensor,
    targets: Tensor,
    *,
    labels: Tensor | None = None,
    settings: SearchSettings = SearchSettings(),
    batch_size: int | None = None,
    progress: bool = True,
) -> AttackResult:
    """Approximate D(x, l) for every image: the closest image in the box classified as its target.

    Args:
        model: maps images (B, C, H, W) to logits (B, K); used in eval mode. A :class:`RowwiseModel` is
            also told which examples the rows are.
        images: (N, C, H, W) finite, in [0, 1], e.g. MNIST's (N, 1, 28, 28). N may be 0.
        targets: (N,) int64 target labels in 0..K-1.
        labels: (N,) true labels; if given, a target equal to its label is an error.
        settings: the search's :class:`SearchSettings`.
        batch_size: examples attacked together (None: :func:`default_batch_size` for the device).
            An example's result may depend on it through rounding, which the network in float64
            all but removes (see :class:`SearchSettings`).
        progress: show a progress bar.

    Returns:
        An :class:`AttackResult` on the CPU, computed in float32 (``adversarial`` in the dtype of
        ``images``).
    """
    cache.forbid_compute("a minimum-distortion search")
    check_images(images, shape=None)
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None (the device's default), got {batch_size!r}")
    if len(images) == 0:
        check_targets(images, targets, labels)
        return AttackResult(images.clone(), torch.zeros(0, dtype=torch.bool), torch.zeros(0), torch.zeros(0))
    dev = device()
    cast = in_precision(model.eval().to(dev), getattr(torch, settings.network_precision))
    rowwise = isinstance(model, RowwiseModel)

    def batch_network(start: int) -> Callable[[Tensor, Tensor], Tensor]:
        """The network of the batch that starts at example ``start``, called with the batch's rows."""
        if rowwise:
            return lambda z, rows: cast(z, rows + start)
        return lambda z, rows: cast(z)

    with torch.no_grad():
        n_classes = batch_network(0)(images[:1].to(dev, torch.float32), torch.zeros(1, dtype=torch.int64, device=dev)).shape[1]
    check_targets(images, targets, labels, n_classes)
    batch_size = batch_size or default_batch_size(dev)
    results = []
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc="min-distortion search", disable=not progress, leave=False):
        x, l = images[start:start + batch_size], targets[start:start + batch_size]
        results.append(_attack_batch(batch_network(start), x.to(dev, torch.float32), l.to(dev), settings))
    adversarial, success, distortion, c = (torch.cat(parts).cpu() for parts in zip(*(
        (r.adversarial, r.success, r.distortion, r.c) for r in results)))
    return AttackResult(adversarial.to(images.dtype), success, distortion, c)


def in_precision(model: nn.Module, dtype: torch.dtype) -> Callable[..., Tensor]:
    """``model`` computed in ``dtype`` for float32 inputs (and any further arguments, passed as they are),
    with float32 outputs: a copy whose floating-point parameters and buffers are cast, the module itself left
    unchanged. (A copy rather than ``torch.func.functional_call`` with cast tensors: the same arithmetic, without
    the 6 % of a search's time that swapping the tensors in and out on every call took.)"""
    tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    if dtype == torch.float32 and all(t.dtype == dtype for t in tensors.values() if t.is_floating_point()):
        return model
    cast = copy.deepcopy(model).to(dtype).requires_grad_(False)
    return lambda z, *rest: cast(z.to(dtype), *rest).float()


CPU_BATCH = 1000
"""Examples per search batch on a CPU: 5,000 images of N100-100-10 took 1.2-1.4x longer in one batch
than in five of 1,000 (2 cores; the batch's working set outgrows the caches)."""
GPU_BATCH = 50_000
"""Examples per search batch on a GPU, where an L-BFGS iteration costs about the same for 1,000 and
for tens of thousands of MNIST images: its time is kernel launches and host syncs, not arithmetic."""


def default_batch_size(dev: torch.device) -> int:
    """:data:`CPU_BATCH` on a CPU, :data:`GPU_BATCH` on a GPU. The choice changes the speed, and an
    example's result only through rounding (see :class:`SearchSettings`)."""
    return GPU_BATCH if dev.type == "cuda" else CPU_BATCH


@dataclass
class CSearch:
    """Each example's search over c, as (B,) tensors.

    c moves by a given factor (its first move) or by 10 (the others) until a success and a failure bracket it;
    then each step tries a c inside the bracket. ``"bisection"`` tries the geometric mean of its ends. ``"illinois"`` tries
    regula falsi in log c on the gap, the minimiser's lead over the required margin (a success where
    it is ≥ 0): where the line through (log lo, gap_lo) and (log hi, gap_hi) crosses 0, with the
    Illinois modification (when one end moves twice in a row, the other end's gap is halved, so that
    it moves next), kept off either end by 0.6 log(1 + bracket_tol) in log c (at least a hundredth of the
    bracket, at most half of it), so that a trial past a root near an end closes the bracket within the
    tolerance.

    Attributes:
        c: the c each example tries next.
        lo: the largest c whose minimiser succeeded (0: none); hi: the smallest that failed (inf: none).
        gap_lo, gap_hi: the gaps of those minimisers.
        side: 1 where the last step moved lo, -1 where it moved hi (0: no step yet).
    """

    c: Tensor
    lo: Tensor
    hi: Tensor
    gap_lo: Tensor
    gap_hi: Tensor
    side: Tensor

    @classmethod
    def start(cls, c_init: float, like: Tensor) -> CSearch:
        """Every example of a batch of ``len(like)`` at c = ``c_init``, on ``like``'s device and dtype."""
        return cls(like.new_full(like.shape, c_init), like.new_zeros(like.shape), like.new_full(like.shape, math.inf),
                   like.new_zeros(like.shape), like.new_zeros(like.shape), like.new_zeros(like.shape))

    def step(self, rows: Tensor, lead: Tensor, *, margin: float, c_update: str, bracket_tol: float,
             first_factor: float) -> Tensor:
        """Record the outcome of the examples ``rows`` (k,) at their c and move their c.

        Args:
            lead: (k,) how far each minimiser's target leads (:func:`target_lead`).
            margin, c_update, bracket_tol: the search's (see :class:`SearchSettings`).
            first_factor: the factor of an example's first move (``SearchSettings.first_c_factor``); later moves
                before the bracket are by 10.

        Returns:
            (k,) bool, whether each minimiser was classified as its target (as :func:`classified_as` decides).
        """
        hit, gap = lead >= margin, lead - margin
        c, lo, hi = self.c[rows], self.lo[rows], self.hi[rows]
        gap_lo = torch.where(hit & (c >= lo), gap, self.gap_lo[rows])
        gap_hi = torch.where(~hit & (c <= hi), gap, self.gap_hi[rows])
        lo = torch.where(hit, torch.maximum(lo, c), lo)
        hi = torch.where(hit, hi, torch.minimum(hi, c))
        side = torch.where(hit, torch.ones_like(c), -torch.ones_like(c))
        factor = torch.where(self.side[rows] == 0, torch.full_like(c, first_factor), torch.full_like(c, 10.0))
        if c_update == "bisection":
            inside = (lo * hi).sqrt()
        else:
            last = self.side[rows]
            gap_hi = torch.where((side == 1) & (last == 1), gap_hi / 2, gap_hi)
            gap_lo = torch.where((side == -1) & (last == -1), gap_lo / 2, gap_lo)
            log_lo, log_hi = lo.clamp(*C_RANGE).log(), hi.clamp(*C_RANGE).log()
            width = log_hi - log_lo
            along = (gap_lo / (gap_lo - gap_hi)).nan_to_num(0.5, 0.5, 0.5)
            keep_off = torch.full_like(width, 0.6 * math.log1p(bracket_tol)).maximum(0.01 * width).minimum(width / 2)
            inside = (log_lo + along * width).clamp(log_lo + keep_off, log_hi - keep_off).exp()
        self.c[rows] = torch.where(torch.isinf(hi), c * factor, torch.where(lo == 0, c / factor, inside))
        self.lo[rows], self.hi[rows], self.gap_lo[rows], self.gap_hi[rows], self.side[rows] = lo, hi, gap_lo, gap_hi, side
        return hit

    def bracketed(self, bracket_tol: float) -> Tensor:
        """(B,) bool: whether each example's smallest failed c is within a factor 1 + ``bracket_tol`` of its
        largest successful one."""
        return self.hi <= self.lo * (1 + bracket_tol)


def _attack_batch(model: Callable[[Tensor, Tensor], Tensor], x: Tensor, target: Tensor,
                  settings: SearchSettings) -> AttackResult:
    """The search of one batch; ``model(z, rows)`` gives the logits of the batch's examples ``rows`` at ``z``."""
    margin, logit_scale = settings.margin, settings.logit_scale
    batch = len(x)
    best = x.clone()
    best_sq = x.new_full((batch,), float("inf"))
    search = CSearch.start(settings.c_init, best_sq)
    c = search.c
    carried = settings.restart == "carried"
    # The objective where a failed example restarts (its best point, x until one succeeds): the aux there (target's
    # lead, cross-entropy) and the cross-entropy's gradient. Kept for carried restarts only.
    at_best = (x.new_zeros(batch, 2), x.new_zeros(batch, x[0].numel())) if carried else None

    def objective(z: Tensor, index: Tensor) -> Evaluation:
        """c·‖z − x‖² + CE(logit_scale · f(z), l) at the examples ``index``, its gradient (autograd's through the
        network, 2c(z − x) written out, as autograd's own would sum them) and, as ``aux``, the target's lead and the
        cross-entropy (columns :data:`_LEAD` and :data:`_CE`)."""
        logits = model(z, index)
        originals = x if len(index) == batch else x.index_select(0, index)  # every example: no gather needed
        targets, cs = target[index], c[index]
        ce = F.cross_entropy(logits if logit_scale == 1 else logit_scale * logits, targets, reduction="none")
        (g_ce,) = torch.autograd.grad(ce.sum(), z)
        z, ce = z.detach(), ce.detach()
        diff = (z - originals).flatten(1)
        sq = (diff * diff).sum(1)
        g = g_ce.flatten(1) + (2 * cs).view(-1, 1) * diff
        lead = target_lead(logits.detach(), targets)
        aux = torch.stack([lead, ce], 1)
        better = (lead >= margin) & (sq < best_sq[index])  # keep the best successful iterate seen anywhere
        if better.any():
            where = index[better]
            best[where] = z[better]
            best_sq[where] = sq[better]
            if at_best is not None:
                at_best[0][where], at_best[1][where] = aux[better], g_ce.flatten(1)[better]
        return Evaluation(cs * sq + ce, g, aux)

    z = x.clone()
    searching = torch.ones(batch, dtype=torch.bool, device=x.device)
    start: Evaluation | None = None  # the objective where the next c step starts, when carried
    if at_best is not None:  # carried
        with torch.enable_grad():
            start = objective(x.detach().requires_grad_(True), torch.arange(batch, device=x.device))
        at_best[0].copy_(start.aux), at_best[1].copy_(start.g)  # at x, ‖z − x‖ = 0: the gradient is the CE's
    for _ in range(settings.c_steps):
        rows = searching.nonzero().squeeze(1)
        if rows.numel() == 0:
            break

        def rows_objective(zs: Tensor, index: Tensor) -> Evaluation:
            return objective(zs, rows[index])

        run = box_lbfgs(rows_objective, z.index_select(0, rows), settings.max_iter, memory=settings.memory,
                        gtol=settings.tol, ftol=settings.tol, backtracking=settings.backtracking, start=start,
                        min_curvature=2 * c[rows] if settings.first_step == "distortion" else None)
        if carried:
            lead = run.at.aux[:, _LEAD]
        else:
            with torch.no_grad():
                lead = target_lead(model(run.z, rows), target[rows])
        c_old = c[rows]
        hit = search.step(rows, lead, margin=margin, c_update=settings.c_update, bracket_tol=settings.bracket_tol,
                          first_factor=settings.first_c_factor)
        z0 = torch.where(hit.view(-1, *[1] * (z.ndim - 1)), run.z, best.index_select(0, rows))  # failures: from the best
        z[rows] = z0
        if settings.bracket_tol > 0:
            searching &= ~search.bracketed(settings.bracket_tol)
        if at_best is not None:  # carried
            at_z0 = _restart_objective(z0, x.index_select(0, rows), c[rows], c_old, hit, run.at,
                                       (at_best[0][rows], at_best[1].index_select(0, rows)))
            going_on = searching[rows]
            start = Evaluation(at_z0.f[going_on], at_z0.g[going_on], at_z0.aux[going_on])
    success = torch.isfinite(best_sq)
    distortion = torch.where(success, (best_sq / x[0].numel()).sqrt(), torch.zeros_like(best_sq))
    return AttackResult(best, success, distortion, search.lo)


def _restart_objective(z0: Tensor, x: Tensor, c_new: Tensor, c_old: Tensor, hit: Tensor, at_end: Evaluation,
                       at_best: tuple[Tensor, Tensor]) -> Evaluation:
    """The search's objective at the points ``z0`` (k, ...) where k examples (images ``x``) start their next c step,
    without calling the network: where an example succeeded (``hit``) it starts where its last step ended
    (``at_end``, found at c = ``c_old``), else at its best point, whose aux (the target's lead, the cross-entropy)
    and cross-entropy's gradient are ``at_best``. The lead and the cross-entropy are the ones computed there; so is
    the gradient at a best point; at a step's end it is the one there plus 2(c_new − c_old)(z − x), a fresh
    evaluation's up to rounding."""
    diff = (z0 - x).flatten(1)
    sq = (diff * diff).sum(1)
    best_aux, best_g_ce = at_best
    aux = torch.where(hit.view(-1, 1), at_end.aux, best_aux)
    g = torch.where(hit.view(-1, 1), at_end.g + (2 * (c_new - c_old)).view(-1, 1) * diff,
                    best_g_ce + (2 * c_new).view(-1, 1) * diff)
    return Evaluation(c_new * sq + aux[:, _CE], g, aux)


EXACT_CHUNK = 8192
"""Examples per batch of the exact attack's dual solve: it bounds the float64 (n, m) tensors of its objective."""


def exact_linear_attack(weight: Tensor, bias: Tensor, images: Tensor, targets: Tensor,
                        labels: Tensor | None = None, margin: float = 1e-4, *, max_iter: int = 2000) -> AttackResult:
    """The exact D(x, l) of a linear classifier logits = W x + b, by its convex dual.

    The primal, min ‖z − x‖² s.t. (w_l − w_j)·z + b_l − b_j ≥ margin for j ≠ l and z ∈ [0, 1]^m,
    has the dual max_{μ ≥ 0} ‖z(μ) − x‖² − μ·(A z(μ) + β) with z(μ) = clip(x + Aᵀμ / 2, 0, 1),
    a smooth concave problem in the 9 multipliers μ. It is solved for every example at once, in
    float64, by the book's batched box L-BFGS (:func:`intriguing.lbfgs_box.box_lbfgs`, μ ∈ [0, ∞)),
    on the device of ``weight``.

    Args:
        weight: (10, m) weights; bias: (10,) biases.
        images: (N, 1, 28, 28) in [0, 1]; targets: (N,) target labels.
        labels: (N,) true labels, to reject targets equal to them.
        margin: how far past the decision boundary the result must lie.
        max_iter: L-BFGS iterations per example; an unreachable target (its dual is unbounded)
            runs to this cap and is reported as a failure.

    Returns:
        An :class:`AttackResult` on the CPU (``c`` is 0: there is no c to search).
    """
    check_targets(images, targets, labels)
    w, b = weight.detach().double(), bias.detach().double()
    xs = images.detach().to(w.device, torch.float64).flatten(1)
    ls = targets.to(w.device)
    steps = torch.arange(1, N_CLASSES, device=w.device)
    parts = []
    for start in range(0, len(xs), EXACT_CHUNK):
        x, l = xs[start:start + EXACT_CHUNK], ls[start:start + EXACT_CHUNK]
        others = (l[:, None] + steps) % N_CLASSES  # (n, 9): every class but the target

        def z_of(mu: Tensor, i: Tensor, x: Tensor = x, l: Tensor = l, others: Tensor = others) -> Tensor:
            nu = torch.zeros(len(i), N_CLASSES, dtype=mu.dtype, device=mu.device)
            nu.scatter_(1, others[i], -mu).scatter_(1, l[i, None], mu.sum(1, keepdim=True))
            return (x[i] + nu @ w / 2).clamp(0, 1)  # Aᵀμ = Σ_j μ_j (w_l − w_j)

        def negative_dual(mu: Tensor, i: Tensor, x: Tensor = x, l: Tensor = l, others: Tensor = others) -> Tensor:
            z = z_of(mu, i)
            logits = z @ w.T + b
            slack = logits.gather(1, l[i, None]) - logits.gather(1, others[i]) - margin
            return (mu * slack).sum(1) - squared_norm(z - x[i], 1)

        mu = box_lbfgs(negative_dual, x.new_zeros(len(x), N_CLASSES - 1), max_iter, lower=0.0, upper=float("inf"),
                       gtol=1e-12, ftol=1e-15).z
        parts.append(z_of(mu, torch.arange(len(x), device=w.device)).float())
    adversarial = torch.cat(parts).view(images.shape)
    success = (adversarial.flatten(1) @ weight.detach().float().T + bias.detach().float()).argmax(1) == ls
    distortion = rms_distortion(adversarial, images.to(w.device))
    return AttackResult(adversarial.cpu(), success.cpu(), distortion.cpu(), torch.zeros(len(images)))
