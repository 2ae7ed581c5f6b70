"""Training the paper's networks: full-batch L-BFGS with quadratic weight decay, cached on disk.

The paper trains every MNIST model "with L-BFGS until convergence" (§4.2) with weight decay
written λ Σw²/k, k the number of units in the layer. Three readings are implemented:
``"per_unit"`` (λ Σw²/k, as written), ``"sum"`` (λ Σw²) and ``"half"`` (½ λ Σw², whose gradient
is λw). The networks chapter measures all three on the softmax models, whose errors depend
on λ most; :data:`DEFAULT_DECAY` is the one that reproduces Table 1 best.

:func:`fit` trains a network on the images it is given; caching trained networks by their
configuration is :mod:`intriguing.artifacts`' job. Long L-BFGS runs write atomic checkpoints
where :func:`fit` is told to, so a killed run resumes where it stopped.

"Until convergence" is read as a window test: an L-BFGS stage stops once its objective fell by
less than a given fraction over the last :data:`CONVERGENCE_WINDOW` iterations, with the
profile's iteration cap kept as a safety limit. The networks chapter measures what training on
to the cap would have changed.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import cache
from .data import Split, check_split
from .hardware import device
from .models import AutoencoderClassifier, MNISTNetwork, NetworkSpec
from .norms import squared_norm
from .sparse_autoencoder import SparseAutoencoderObjective

__all__ = [
    "CHECKPOINT_EVERY",
    "CONVERGENCE_WINDOW",
    "DECAY_MODES",
    "DEFAULT_DECAY",
    "FitLog",
    "TrainedNetwork",
    "fit",
    "minimize_lbfgs",
    "weight_decay",
    "window_fall",
]

DECAY_MODES = ("half", "sum", "per_unit")
DEFAULT_DECAY = "half"
CHECKPOINT_EVERY = 25  # L-BFGS iterations between checkpoints (and progress updates)
CONVERGENCE_WINDOW = 100  # L-BFGS iterations over which the window test measures the objective's fall



@dataclass
class FitLog:
    """What one training stage did.

    Attributes:
        iterations: optimiser iterations (L-BFGS) or epochs (Adam) run.
        stop: why it stopped: ``"cap"`` (the iteration cap), ``"lbfgs tolerance"`` (torch's
            L-BFGS found no more progress), ``"window"`` (the window test of
            :func:`minimize_lbfgs`) or ``"epochs"`` (Adam ran its epochs).
        losses: the objective after every :data:`CHECKPOINT_EVERY` iterations, from iteration 0
            to the last (L-BFGS), or the mean minibatch objective of each epoch (Adam).
        seconds: wall time, summed over resumed runs.
        seconds_before: the part of ``seconds`` spent before the last resume (in a killed run, or
            in the stopped run a run to the cap continued; see :func:`minimize_lbfgs`).
    """

    iterations: int
    stop: str
    losses: list[float]
    seconds: float
    seconds_before: float = 0.0

    @property
    def converged(self) -> bool:
        """Whether an L-BFGS stage stopped before its cap."""
        return self.stop in ("lbfgs tolerance", "window")


@dataclass
class TrainedNetwork:
    """A trained network with how it was trained."""

    name: str
    model: MNISTNetwork
    decay_mode: str
    stages: dict[str, FitLog]

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages.values())


def weight_decay(model: MNISTNetwork, lambdas: Sequence[float], mode: str = DEFAULT_DECAY) -> Tensor:
    """Quadratic weight decay over the network's weight layers (biases are not decayed).

    Args:
        model: a network; its ``weight_layers()`` are paired with ``lambdas`` in order.
        lambdas: λ for each weight layer.
        mode: ``"half"`` for ½ λ Σw², ``"sum"`` for λ Σw², ``"per_unit"`` for the paper's
            λ Σw²/k with k the number of units (outputs) of the layer.

    Returns:
        A scalar tensor.
    """
    if mode not in DECAY_MODES:
        raise ValueError(f"unknown decay mode {mode!r}; choose one of {DECAY_MODES}")
    layers = model.weight_layers()
    if len(layers) != len(lambdas):
        raise ValueError(f"{len(lambdas)} weight-decay values for {len(layers)} weight layers")
    total = torch.zeros((), device=layers[0].weight.device)
    for lam, layer in zip(lambdas, layers):
        scale = {"half": 0.5, "sum": 1.0, "per_unit": 1.0 / layer.weight.shape[0]}[mode]
        total = total + scale * lam * squared_norm(layer.weight)
    return total


def window_fall(losses: Sequence[float], window: int = CONVERGENCE_WINDOW, every: int = CHECKPOINT_EVERY) -> float:
    """The objective's relative fall over the last ``window`` iterations, from losses recorded
    every ``every`` iterations (inf while fewer than ``window`` iterations are recorded)."""
    back = window // every
    if len(losses) <= back:
        return float("inf")
    then, now = losses[-1 - back], losses[-1]
    return (then - now) / max(abs(then), 1e-30)


def minimize_lbfgs(
    module: nn.Module,
    params: list[nn.Parameter],
    objective: Callable[[], Tensor],
    max_iter: int,
    *,
    gradient: Callable[[], Tensor] | None = None,
    converge_below: float | None = None,
    desc: str = "L-BFGS",
    checkpoint: Path | None = None,
    handover: Path | None = None,
    history_size: int = 100,
) -> FitLog:
    """Full-batch L-BFGS with a strong-Wolfe line search, until convergence or ``max_iter``.

    Runs in intervals of :data:`CHECKPOINT_EVERY` iterations; after each it records the objective,
    updates a progress bar and, if ``checkpoint`` is given, atomically saves the module and
    optimiser state there. A run that finds that checkpoint resumes from it and ends with the same
    weights as an uninterrupted run (a damaged checkpoint is reported, named and deleted, and the
    stage starts afresh). The checkpoint is removed when the run ends. The window test
    is checked only between intervals, so a run stopped by it is the prefix of a run to the cap:
    given ``handover``, such a run leaves its final state there, and a run to the cap whose
    checkpoint is ``handover`` starts from it instead of repeating those iterations.

    Args:
        module: owns ``params``; its ``state_dict`` is what the checkpoint stores.
        params: the parameters to optimise.
        objective: returns the scalar loss at the current parameters.
        max_iter: iteration cap.
        gradient: returns the same loss having written its gradient to ``params``' ``.grad``; None:
            autograd differentiates ``objective``.
        converge_below: stop once the objective fell by less than this fraction over the last
            :data:`CONVERGENCE_WINDOW` iterations (see :func:`window_fall`); None: run to the cap
            or torch's own tolerance.
        desc: progress-bar label.
        checkpoint: where to keep the resumable state, or None.
        handover: where a run stopped by the window test leaves its final state, or None.
        history_size: L-BFGS memory.

    Returns:
        A :class:`FitLog`.

    Raises:
        FloatingPointError: the objective is NaN or infinite; the message names the iteration.
    """
    if converge_below is not None and not converge_below > 0:
        raise ValueError(f"converge_below must be positive, got {converge_below}")
    opt = torch.optim.LBFGS(params, lr=1, max_iter=CHECKPOINT_EVERY, max_eval=CHECKPOINT_EVERY * 10,
                            history_size=history_size, line_search_fn="strong_wolfe")
    done, stop, losses, seconds = 0, "", [], 0.0
    initial = {k: v.clone() for k, v in module.state_dict().items()}  # what a damaged checkpoint falls back to
    if checkpoint is not None and checkpoint.exists():
        try:
            saved = cache.load(checkpoint)
            module.load_state_dict(saved["module"])
            opt.load_state_dict(saved["optimizer"])
            done, stop, losses, seconds = saved["done"], saved["stop"], saved["losses"], saved["seconds"]
        except Exception as err:  # damaged or from an incompatible run: this stage starts afresh
            warnings.warn(f"ignoring unreadable checkpoint {checkpoint} ({err}); {desc} starts afresh", stacklevel=2)
            checkpoint.unlink(missing_ok=True)
            module.load_state_dict(initial)
            opt = torch.optim.LBFGS(params, lr=1, max_iter=CHECKPOINT_EVERY, max_eval=CHECKPOINT_EVERY * 10,
                                    history_size=history_size, line_search_fn="strong_wolfe")
    seconds_before = seconds

    def state(stop: str) -> dict[str, Any]:
        return {"module": module.state_dict(), "optimizer": opt.state_dict(), "done": done, "stop": stop,
                "losses": losses, "seconds": seconds}

    def closure() -> Tensor:
        opt.zero_grad()
        if gradient is not None:
            return gradient()
        loss = objective()
        loss.backward()
        return loss

    with tqdm(total=max_iter, initial=done, desc=desc, unit="it", leave=False) as bar:
        while not stop:
            start = time.perf_counter()
            if not losses:
                with torch.no_grad():
                    losses.append(float(objective()))
                if not math.isfinite(losses[0]):
                    raise FloatingPointError(f"{desc}: the objective is {losses[0]} at the start (NaN images or weights?)")
            if done >= max_iter:
                stop = "cap"
                continue
            before = opt.state[params[0]].get("n_iter", 0)
            opt.param_groups[0]["max_iter"] = min(CHECKPOINT_EVERY, max_iter - done)
            opt.step(closure)
            ran = opt.state[params[0]]["n_iter"] - before
            done += ran
            with torch.no_grad():
                losses.append(float(objective()))
            if not math.isfinite(losses[-1]):
                raise FloatingPointError(f"{desc}: the objective is {losses[-1]} after {done} L-BFGS iterations")
            if ran < opt.param_groups[0]["max_iter"]:
                stop = "lbfgs tolerance"
            elif converge_below is not None and window_fall(losses) < converge_below:
                stop = "window"
            elif done >= max_iter:
                stop = "cap"
            seconds += time.perf_counter() - start
            bar.update(ran)
            bar.set_postfix(loss=f"{losses[-1]:.5g}")
            if checkpoint is not None:
                cache.atomic_save(state(stop), checkpoint)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    if handover is not None and stop == "window" and not handover.exists():  # one there is further along
        cache.atomic_save(state(""), handover)  # no stop: the run to the cap goes on from here
    return FitLog(done, stop, losses, seconds, seconds_before)


def _classifier_objective(model: MNISTNetwork, inputs: Tensor, labels: Tensor,
                          head: nn.Module | None, lambdas: Sequence[float], mode: str) -> Callable[[], Tensor]:
    forward = head if head is not None else model

    def objective() -> Tensor:
        return F.cross_entropy(forward(inputs), labels) + weight_decay(model, lambdas, mode)

    return objective


def _train_conv(model: MNISTNetwork, spec: NetworkSpec, data: Split, epochs: int, mode: str) -> FitLog:
    """Adam on minibatches of 128: dropout makes a full-batch L-BFGS objective ill-posed."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(spec.seed)
    losses, start = [], time.perf_counter()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(data), generator=generator).to(data.images.device)
        total = 0.0
        for batch in tqdm(order.split(128), desc=f"{spec.name} epoch {epoch + 1}/{epochs}", leave=False):
            opt.zero_grad()
            loss = F.cross_entropy(model(data.images[batch]), data.labels[batch])
            loss = loss + weight_decay(model, spec.weight_decay, mode)
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        losses.append(total / len(data))
    model.eval()
    return FitLog(epochs, "epochs", losses, time.perf_counter() - start)


def fit(model: MNISTNetwork, spec: NetworkSpec, data: Split, *, lbfgs_iterations: Mapping[str, int],
        conv_epochs: int, converge_below: float | None = None, decay_mode: str = DEFAULT_DECAY,
        checkpoint: Callable[[str], Path] | None = None,
        handover: Callable[[str], Path] | None = None) -> dict[str, FitLog]:
    """Train ``model`` (built from ``spec``) on ``data`` the way its family is trained, seeded by ``spec.seed``.

    Args:
        model: the untrained network; trained in place and left on the CPU in eval mode.
        spec: its :class:`intriguing.models.NetworkSpec` (family, weight decay, seed).
        data: the training images (N, 1, 28, 28) in [0, 1] and labels (N,).
        lbfgs_iterations: the L-BFGS cap per stage: ``"softmax"``, ``"mlp"``, ``"autoencoder"``,
            ``"ae_softmax"``.
        conv_epochs: Adam epochs for the ``conv`` family.
        converge_below: every L-BFGS stage's window test (see :func:`minimize_lbfgs`); None: to the cap.
        decay_mode: ``"half"``, ``"sum"`` or ``"per_unit"`` (see :func:`weight_decay`).
        checkpoint: stage name -> where to keep that stage's resumable L-BFGS state.
        handover: stage name -> where the first L-BFGS stage, if the window test stops it, leaves
            its state for the run to the cap (see :func:`minimize_lbfgs`). Only the first: a later
            stage starts from what the earlier ones made, which differs in the run to the cap.

    Returns:
        Stage name -> :class:`FitLog`.
    """
    cache.forbid_compute(f"training {spec.name}")
    if decay_mode not in DECAY_MODES:
        raise ValueError(f"unknown decay mode {decay_mode!r}; choose one of {DECAY_MODES}")
    check_split(data, "the training data")
    if len(data) == 0:
        raise ValueError("cannot train on an empty set")
    dev = device()
    data = Split(data.images.to(dev), data.labels.to(dev))
    model.to(dev)

    def where(paths: Callable[[str], Path] | None, stage: str) -> Path | None:
        return paths(stage) if paths is not None else None

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        if spec.family == "conv":
            stages = {"adam": _train_conv(model, spec, data, conv_epochs, decay_mode)}
        elif spec.family in ("softmax", "mlp"):
            objective = _classifier_objective(model, data.images, data.labels, None, spec.weight_decay, decay_mode)
            stages = {"lbfgs": minimize_lbfgs(model, list(model.parameters()), objective,
                                              lbfgs_iterations[spec.family], converge_below=converge_below, desc=spec.name,
                                              checkpoint=where(checkpoint, "lbfgs"),
                                              handover=where(handover, "lbfgs"))}
        else:
            assert isinstance(model, AutoencoderClassifier)
            ae_params = [*model.encoder.parameters(), *model.decoder.parameters()]
            ae_objective = SparseAutoencoderObjective(model, data.images)
            ae_log = minimize_lbfgs(model, ae_params, ae_objective, lbfgs_iterations["autoencoder"],
                                    gradient=ae_objective.value_and_gradient, converge_below=converge_below,
                                    desc=f"{spec.name} autoencoder",
                                    checkpoint=where(checkpoint, "autoencoder"),
                                    handover=where(handover, "autoencoder"))
            with torch.no_grad():
                codes = model.codes(data.images)
            objective = _classifier_objective(model, codes, data.labels, model.head, spec.weight_decay, decay_mode)
            head_log = minimize_lbfgs(model, list(model.head.parameters()), objective,
                                      lbfgs_iterations["ae_softmax"], converge_below=converge_below,
                                      desc=f"{spec.name} softmax",
                                      checkpoint=where(checkpoint, "softmax"))
            stages = {"autoencoder": ae_log, "softmax": head_log}
    model.cpu().eval()
    return stages
