"""Adversarial training (§4.2): a pool of minimum-distortion examples, made at the input or at a hidden
layer's output, kept mixed into the training minibatches and continuously refreshed.

For a sigmoid network 784-h1-...-10 (:class:`intriguing.models.SigmoidMLP`), layer k's output h_k
(k = 0 is the input, k = 1, 2, … the hidden layers' sigmoid outputs) lies in [0, 1]. The network
*above* layer k maps h_k to logits, and D(h_k, l) for it is the same box-constrained problem as
for images: :func:`layer_adversarial` hands h_k, shaped (N, 1, 1, d_k), to the book's batched
search, :func:`intriguing.attacks.min_distortion_attack`. An example made at layer k enters the
network at layer k, so it trains only the layers above k.

A full-batch L-BFGS objective cannot hold a pool that changes all the time, so this training runs
on minibatches (Adam or SGD); :func:`adversarial_fit` with no pool is the same minibatch training without
adversarial examples, for comparison.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import cache
from .attacks import AttackResult, RowwiseModel, SearchSettings, default_batch_size, min_distortion_attack, random_targets
from .data import Split, check_images, check_split
from .hardware import device
from .models import SigmoidMLP
from .norms import squared_norm
from .phases import PhaseTimes

__all__ = ["DROPOUT_STREAM", "FGSM_CLEAN_WEIGHT", "OPTIMIZERS", "POOL_KEPT", "POOL_SCALINGS", "POOL_TARGETS",
           "POOL_VERDICTS", "RECORD_FORMAT", "SCHEDULES", "SGD_MOMENTUM", "STACKED_SEARCH", "AdversarialPool",
           "AdversarialTrainingSettings", "NetworkAbove", "Recipe", "StackedNetworkAbove", "StackedSigmoidMLP",
           "TrainingCurve", "adversarial_fit", "adversarial_fit_many", "fast_gradient_sign", "forward_from",
           "layer_adversarial", "layer_output", "pool_verdicts", "refresh_record", "refresh_stack",
           "resize_perturbations", "runner_up_targets", "seeded_networks", "to_device"]


RECORD_FORMAT = 3
"""The layout of what an adversarially trained network's cached record holds (3: the input pool kept): part of
its cache key, bumped to retrain every such network after a change to what training records."""
POOL_TARGETS = ("random", "runner-up")
"""The pools' target choices (:attr:`AdversarialTrainingSettings.pool_target`)."""
POOL_SCALINGS = ("as found", "cap", "fixed")
"""The pools' example sizes (:attr:`AdversarialTrainingSettings.pool_scaling`)."""
OPTIMIZERS = ("adam", "sgd")
"""The optimisers (:attr:`AdversarialTrainingSettings.optimizer`): Adam, or SGD with Nesterov momentum
:data:`SGD_MOMENTUM`."""
SGD_MOMENTUM = 0.9
SCHEDULES = ("halving", "cosine")
"""The learning-rate schedules (:attr:`AdversarialTrainingSettings.schedule`): halved at 50 % and 75 % of
the epochs, or annealed to 0 along a cosine, epoch by epoch."""


@dataclass(frozen=True)
class AdversarialTrainingSettings:
    """How one network is trained, with or without pools of adversarial examples.

    Attributes:
        pool_layers: the layers that keep a pool (0: the input; 1, 2, …: hidden outputs); () trains
            without adversarial examples.
        pool_size: examples in each layer's pool.
        refresh_every: minibatch steps between refreshes.
        refresh_share: the share of each pool replaced by new examples at a refresh, in (0, 1].
        mix: pooled examples per clean example in every minibatch, shared equally between the
            pooled layers.
        epochs: passes over the clean training images.
        pool_start: the epoch the pools start in (0: at once). A pool made against an untrained
            network holds layer outputs of a representation the network no longer has.
        batch_size: clean images per minibatch.
        lr: the optimiser's learning rate at the start.
        optimizer: ``"adam"`` or ``"sgd"`` (Nesterov momentum :data:`SGD_MOMENTUM`).
        schedule: ``"halving"`` (the learning rate halved at 50 % and 75 % of the epochs) or
            ``"cosine"`` (annealed to 0 along a cosine over the epochs).
        dropout_input, dropout_hidden: dropout on the input and on each hidden output (0: none).
        max_norm: > 0 caps the L2 norm of every unit's incoming weights at this value after each step, as
            dropout networks are usually trained (Srivastava et al. 2014); 0: no cap.
        search: the search that makes the pool's examples (cheaper than the chapters' own, and in
            float32: the pools need no independence from the batch, and they are this training's
            main cost).
        pool_target: the pools' targets: ``"random"`` (a uniformly random wrong label) or
            ``"runner-up"`` (the wrong label the network ranks highest, a cheap stand-in for the
            nearest, which would cost nine searches).
        pool_scaling: the pools' example size: ``"as found"``, ``"cap"`` (a perturbation larger than
            ``pool_distortion`` RMS shrunk to it) or ``"fixed"`` (every perturbation rescaled to
            ``pool_distortion`` RMS, as Table 4 amplifies), clipped to [0, 1].
        pool_distortion: the RMS size of ``"cap"`` and ``"fixed"``, in the layer's units.
        fgsm_epsilon: with no pools, > 0 trains on fast-gradient-sign examples instead (Goodfellow,
            Shlens & Szegedy 2015, §6): each step's loss is α·CE(x) + (1 − α)·CE(clip(x + ε·sign ∇ₓCE)),
            ε this value (pixels in [0, 1]), α :data:`FGSM_CLEAN_WEIGHT`. 0: none.
    """

    pool_layers: tuple[int, ...] = ()
    pool_size: int = 10_000
    refresh_every: int = 100
    refresh_share: float = 0.1
    mix: float = 0.5
    epochs: int = 24
    pool_start: int = 4
    batch_size: int = 128
    lr: float = 1e-3
    dropout_input: float = 0.0
    dropout_hidden: float = 0.0
    # The pools' search keeps bisecting c, evaluating the network where each c step starts, bounding a c step's
    # first step by the pixel only and starting c at 1, every move by 10: its effort (4 c steps of 20 iterations)
    # was chosen on held-out images with these (2026-12-02), and every pool of §4.2 was found with them.
    search: SearchSettings = field(default_factory=lambda: SearchSettings(
        c_steps=4, c_init=1.0, first_c_factor=10.0, max_iter=20, network_precision="float32", c_update="bisection",
        restart="evaluated", first_step="pixel"))
    pool_target: str = "random"
    pool_scaling: str = "as found"
    pool_distortion: float = 0.0
    fgsm_epsilon: float = 0.0
    optimizer: str = "adam"
    schedule: str = "halving"
    max_norm: float = 0.0

    def __post_init__(self) -> None:
        if len(set(self.pool_layers)) != len(self.pool_layers) or any(k < 0 for k in self.pool_layers):
            raise ValueError(f"pool_layers must be distinct non-negative layers, got {self.pool_layers}")
        if not 0 < self.refresh_share <= 1:
            raise ValueError(f"refresh_share must lie in (0, 1], got {self.refresh_share}")
        for name in ("pool_size", "refresh_every", "epochs", "batch_size", "pool_start"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            if name != "pool_start" and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if not 0 <= self.pool_start < self.epochs:
            raise ValueError(f"pool_start must lie in [0, epochs), got {self.pool_start}")
        if not 0 <= self.mix < math.inf:
            raise ValueError(f"mix must be a finite non-negative number, got {self.mix}")
        if not 0 < self.lr < math.inf:
            raise ValueError(f"lr must be a finite positive number, got {self.lr}")
        if self.pool_layers and self.mix > 0 and self.pooled_per_layer() == 0:  # mix 0 asks for none
            raise ValueError(f"mix {self.mix} gives no pooled example per minibatch: {self.mix} x {self.batch_size} "
                             f"clean images shared by {len(self.pool_layers)} pool(s) rounds to 0")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {SCHEDULES}")
        if self.pool_target not in POOL_TARGETS:
            raise ValueError(f"unknown pool_target {self.pool_target!r}; choose one of {POOL_TARGETS}")
        if self.pool_scaling not in POOL_SCALINGS:
            raise ValueError(f"unknown pool_scaling {self.pool_scaling!r}; choose one of {POOL_SCALINGS}")
        if (self.pool_scaling != "as found") != (0 < self.pool_distortion < math.inf):
            raise ValueError(f"pool_scaling {self.pool_scaling!r} needs a finite positive pool_distortion, and only "
                             f"it takes one; got {self.pool_distortion}")
        if not 0 <= self.fgsm_epsilon <= 1:
            raise ValueError(f"fgsm_epsilon must lie in [0, 1] (pixels lie in [0, 1]), got {self.fgsm_epsilon}")
        if self.fgsm_epsilon and self.pool_layers:
            raise ValueError("fast-gradient-sign training is the pools' control: give it no pool_layers")
        for name in ("dropout_input", "dropout_hidden"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must lie in [0, 1), got {getattr(self, name)}")
        if not 0 <= self.max_norm < math.inf:
            raise ValueError(f"max_norm must be a finite non-negative number (0: no cap), got {self.max_norm}")

    def pooled_per_layer(self) -> int:
        """Pooled examples of each pooled layer in every minibatch: ``mix`` × ``batch_size`` shared
        equally between the pooled layers, rounded (0 without pools)."""
        return round(self.mix * self.batch_size / len(self.pool_layers)) if self.pool_layers else 0

    def describe(self) -> str:
        """A few short lines: the schedule, the pools, dropout, then the pools' search (when there are pools)."""
        size = "as found" if self.pool_scaling == "as found" else f"{self.pool_scaling} {self.pool_distortion:g} RMS"
        pools = (f"pools at layers {', '.join(map(str, self.pool_layers))} (0: the input), {self.pool_size:,} "
                 f"examples each from epoch {self.pool_start}\n{self.refresh_share:.0%} of each replaced every "
                 f"{self.refresh_every} minibatches, {self.mix:g} pooled per clean example\n"
                 f"{self.pool_target} targets, examples {size}"
                 if self.pool_layers else "no pools")
        if self.fgsm_epsilon:
            pools = (f"fast-gradient-sign examples at ε = {self.fgsm_epsilon:g}, weighted "
                     f"{1 - FGSM_CLEAN_WEIGHT:g} against {FGSM_CLEAN_WEIGHT:g} for the clean loss")
        optimizer = "Adam" if self.optimizer == "adam" else f"SGD with Nesterov momentum {SGD_MOMENTUM:g}"
        schedule = "halved at 50 % and 75 %" if self.schedule == "halving" else "annealed to 0 along a cosine"
        return (f"{self.epochs} epochs of minibatches of {self.batch_size}, {optimizer} at lr {self.lr:g} "
                f"({schedule})\n{pools}\n"
                f"dropout {self.dropout_input:g} on the input, {self.dropout_hidden:g} on the hidden layers"
                f"{f', max-norm {self.max_norm:g}' if self.max_norm else ''}"
                + (f"\nthe pools' search:\n{self.search.describe()}" if self.pool_layers else ""))

    def key(self) -> dict[str, object]:
        """Every setting, as a cache key (without the fields added later while they hold the value that
        trains as before they existed: ``fgsm_epsilon``, ``pool_target``, ``pool_scaling``, ``pool_distortion``,
        ``optimizer``, ``schedule``, ``max_norm``)."""
        fields = asdict(self)
        fields["search"] = self.search.key()
        for name, neutral in (("fgsm_epsilon", 0.0), ("pool_target", "random"), ("pool_scaling", "as found"),
                              ("pool_distortion", 0.0), ("optimizer", "adam"), ("schedule", "halving"),
                              ("max_norm", 0.0)):
            if fields[name] == neutral:
                del fields[name]
        return fields


@dataclass(frozen=True)
class Recipe:
    """How a network is optimised, the part of :class:`AdversarialTrainingSettings` that a recipe search
    chooses: the optimiser, its schedule, its initial learning rate and the epochs."""

    optimizer: str
    schedule: str
    lr: float
    epochs: int

    def applied(self, settings: AdversarialTrainingSettings) -> AdversarialTrainingSettings:
        """``settings`` trained with this recipe (checked as settings are)."""
        return replace(settings, optimizer=self.optimizer, schedule=self.schedule, lr=self.lr, epochs=self.epochs)

    def describe(self) -> str:
        """One short line, e.g. ``SGD, cosine, lr 0.2, 24 epochs``."""
        return f"{'Adam' if self.optimizer == 'adam' else 'SGD'}, {self.schedule}, lr {self.lr:g}, {self.epochs} epochs"


def seeded_networks(hidden: tuple[int, ...], seeds: list[int]) -> list[SigmoidMLP]:
    """One untrained sigmoid network 784-hidden-10 per seed, each initialised right after ``torch.manual_seed(seed)``."""
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(SigmoidMLP(hidden))
    return models


def _layers(model: SigmoidMLP) -> list[nn.Linear]:
    return [m for m in model.layers if isinstance(m, nn.Linear)]


def _check_layer(model: SigmoidMLP, k: int) -> None:
    hidden = len(_layers(model)) - 1
    if not 0 <= k <= hidden:
        raise ValueError(f"layer {k} does not exist: the network has the input (0) and {hidden} hidden layer(s)")


def forward_from(model: SigmoidMLP, h: Tensor, k: int) -> Tensor:
    """The logits of the network above layer ``k`` for layer-k outputs ``h`` (N, ...) -> (N, 10)."""
    _check_layer(model, k)
    linears = _layers(model)
    out = h.flatten(1)
    for i, linear in enumerate(linears[k:], start=k):
        out = linear(out)
        if i < len(linears) - 1:
            out = torch.sigmoid(out)
    return out


def layer_output(model: SigmoidMLP, images: Tensor, k: int) -> Tensor:
    """h_k for every image: (N, 1, 28, 28) -> (N, d_k), the input flattened for k = 0."""
    _check_layer(model, k)
    h = images.flatten(1)
    for linear in _layers(model)[:k]:
        h = torch.sigmoid(linear(h))
    return h


class NetworkAbove(nn.Module):
    """The layers of ``model`` above layer ``k``, as a module: (N, ...) layer-k outputs -> (N, 10) logits."""

    def __init__(self, model: SigmoidMLP, k: int) -> None:
        super().__init__()
        _check_layer(model, k)
        self.model, self.k = model, k

    def forward(self, h: Tensor) -> Tensor:
        return forward_from(self.model, h, self.k)


def layer_adversarial(model: SigmoidMLP, images: Tensor, targets: Tensor, k: int, *, labels: Tensor | None = None,
                      settings: SearchSettings = SearchSettings()) -> tuple[Tensor, AttackResult]:
    """D(h_k, l): the closest layer-k output in [0, 1] that the layers above classify as the target.

    Args:
        model: a sigmoid network.
        images: (N, 1, 28, 28) in [0, 1]; targets: (N,) target labels; labels: (N,) true labels.
        k: the layer (0: the input itself).
        settings: the search's settings.

    Returns:
        The adversarial layer-k outputs (N, d_k) in [0, 1], and the search's result (its tensors
        shaped (N, 1, 1, d_k)).
    """
    with torch.no_grad():
        h = layer_output(model.eval(), images.to(next(model.parameters()).device), k).cpu()
    result = min_distortion_attack(NetworkAbove(model, k), h.view(len(h), 1, 1, -1), targets, labels=labels,
                                   settings=settings, progress=False)
    return result.adversarial.flatten(1), result


FGSM_CLEAN_WEIGHT = 0.5
"""α, the clean loss's weight in fast-gradient-sign training (Goodfellow, Shlens & Szegedy 2015, §6)."""


def fast_gradient_sign(model: Callable[[Tensor], Tensor], images: Tensor, labels: Tensor, epsilon: float) -> Tensor:
    """clip(x + ε·sign ∇ₓ CE(model(x), label), 0, 1): the fast-gradient-sign example of each image.

    Args:
        model: maps (N, ...) images to (N, classes) logits (or a stack of networks, (S, B, ...) images
            to (S, B, classes): each example's sign is that of its own network's loss); used as it is.
        images: (N, ...) in [0, 1]; labels: (N,) true labels ((S, B) for a stack).
        epsilon: the step, in pixel units, in [0, 1].

    Returns:
        Images shaped as ``images`` in [0, 1], each within ε of its original in every pixel; no gradient.
    """
    if not 0 <= epsilon <= 1:
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
    x = images.detach().requires_grad_(True)
    logits = model(x)
    if tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ValueError(f"labels of shape {tuple(labels.shape)} for logits of shape {tuple(logits.shape)}")
    (grad,) = torch.autograd.grad(F.cross_entropy(logits.flatten(0, -2), labels.flatten()), x)
    return (x + epsilon * grad.sign()).clamp(0, 1).detach()


class AdversarialPool:
    """A pool of adversarial examples per layer, each with its true label and the target its search
    aimed at.

    Args:
        layers: the pooled layers.
        size: examples per pool.
    """

    def __init__(self, layers: tuple[int, ...], size: int) -> None:
        self.layers, self.size = layers, size
        self.inputs: dict[int, Tensor] = {}
        self.labels: dict[int, Tensor] = {}
        self.targets: dict[int, Tensor] = {}

    def refresh(self, model: SigmoidMLP, data: Split, share: float, generator: torch.Generator,
                settings: SearchSettings, *, target: str = "random", scaling: str = "as found",
                distortion: float = 0.0, times: PhaseTimes | None = None) -> dict[int, dict[str, float]]:
        """Replace ``share`` of each pool (all of an empty one) with examples made against ``model``
        now, from random images of ``data`` towards wrong targets chosen by ``target``, sized by
        ``scaling`` and ``distortion`` (see :class:`AdversarialTrainingSettings`). With ``times``, each
        layer's refresh is timed as the phase ``search, layer k``.

        Returns:
            Layer -> what the refresh made: ``replaced`` (how many), ``success`` (the share of
            searches that reached their target; a failed search leaves its clean layer output in the
            pool), and the ``median distortion`` and ``p90 distortion`` (RMS, in the layer's units)
            of the successful ones (NaN with none).
        """
        replaced = {}
        for k in self.layers:
            with _phase(times, f"search, layer {k}"):
                images, labels, targets = self.draw(k, model, data, share, generator, target)
                adversarial, result = layer_adversarial(model, images, targets, k, labels=labels, settings=settings)
                self.put(k, model, images, adversarial, labels, targets, generator, scaling, distortion)
                replaced[k] = refresh_record(result)
        return replaced

    def draw(self, k: int, model: SigmoidMLP, data: Split, share: float, generator: torch.Generator,
             target: str) -> tuple[Tensor, Tensor, Tensor]:
        """The images (n, 1, 28, 28), labels and targets (n,) of layer ``k``'s next refresh, on the CPU."""
        n = max(1, round(share * self.size)) if k in self.inputs else self.size
        pick = torch.randint(len(data), (n,), generator=generator)
        labels = data.labels[pick].cpu()
        targets = random_targets(labels, seed=int(torch.randint(2**31 - 1, (1,), generator=generator)))
        images = data.images[pick].cpu()
        if target == "runner-up":
            targets = runner_up_targets(model, images, labels)
        return images, labels, targets

    def put(self, k: int, model: SigmoidMLP, images: Tensor, adversarial: Tensor, labels: Tensor, targets: Tensor,
            generator: torch.Generator, scaling: str, distortion: float) -> None:
        """Resize the searched layer-k outputs (n, d_k) as ``scaling`` says and put them into the pool: all
        of it when empty, else into random slots."""
        dev = next(model.parameters()).device  # the pool lives where the network trains
        if scaling != "as found":
            with torch.no_grad():
                clean = layer_output(model.eval(), images.to(dev), k).cpu()
            adversarial = resize_perturbations(clean, adversarial.cpu(), scaling, distortion)
        adversarial, labels, targets = adversarial.to(dev), labels.to(dev), targets.to(dev)
        if k not in self.inputs:
            self.inputs[k], self.labels[k], self.targets[k] = adversarial, labels, targets
        else:
            slots = torch.randperm(self.size, generator=generator)[:len(labels)].to(dev)
            self.inputs[k][slots], self.labels[k][slots], self.targets[k][slots] = adversarial, labels, targets

    def kept(self, k: int, n: int) -> dict[str, Tensor]:
        """The first ``n`` slots of layer ``k``'s pool (all of a smaller one), on the CPU: ``inputs``
        (n, d_k), ``labels`` and ``targets`` (n,)."""
        return {name: part[k][:n].cpu() for name, part in
                (("inputs", self.inputs), ("labels", self.labels), ("targets", self.targets))}

    def sample(self, k: int, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``n`` random examples of layer ``k``'s pool, with their labels, on the pool's device."""
        pick = to_device(torch.randint(self.size, (n,), generator=generator), self.inputs[k].device)
        return self.inputs[k][pick], self.labels[k][pick]


def to_device(t: Tensor, dev: torch.device) -> Tensor:
    """A CPU tensor on ``dev``. To a GPU through pinned memory, without waiting: a copy from pageable memory
    first waits for every kernel queued on the stream, and the training steps draw their random indices and
    masks on the CPU (each network from its own generator, as when it trains alone)."""
    if dev.type == "cuda":
        return t.pin_memory().to(dev, non_blocking=True)
    return t.to(dev)


def _phase(times: PhaseTimes | None, name: str) -> AbstractContextManager[None]:
    """``times(name)``, or nothing without ``times``."""
    return nullcontext() if times is None else times(name)


def runner_up_targets(model: SigmoidMLP, images: Tensor, labels: Tensor) -> Tensor:
    """The wrong label each image's logits rank highest: (N, 1, 28, 28), (N,) -> (N,) int64."""
    with torch.no_grad():
        logits = model.eval()(images.to(next(model.parameters()).device)).cpu()
    logits[torch.arange(len(labels)), labels] = -math.inf
    return logits.argmax(1)


POOL_VERDICTS = ("true label", "target", "other label")
"""What an independent network can say a pooled input shows (:func:`pool_verdicts`)."""


def pool_verdicts(model: nn.Module, kept: dict[str, Tensor]) -> dict[str, int]:
    """How many of a pool's inputs (:meth:`AdversarialPool.kept` of layer 0) ``model`` classifies as their
    true label, as their search's target, or as another label.

    Args:
        model: an image classifier, (N, 1, 28, 28) in [0, 1] -> (N, 10) logits.
        kept: ``inputs`` (n, 784) in [0, 1], ``labels`` and ``targets`` (n,).

    Returns:
        Each of :data:`POOL_VERDICTS` -> a count; the counts sum to n.
    """
    inputs, labels, targets = kept["inputs"], kept["labels"], kept["targets"]
    if inputs.ndim != 2 or inputs.shape[1] != 784 or labels.shape != targets.shape or len(labels) != len(inputs):
        raise ValueError(f"a kept input pool needs inputs (n, 784) and labels and targets (n,), got "
                         f"{tuple(inputs.shape)}, {tuple(labels.shape)}, {tuple(targets.shape)}")
    check_images(inputs.view(-1, 1, 28, 28), "the pool's inputs")
    with torch.no_grad():
        said = model.eval()(inputs.view(-1, 1, 28, 28).to(next(model.parameters()).device)).argmax(1).cpu()
    true, target = said == labels, (said == targets) & (said != labels)
    return {"true label": int(true.sum()), "target": int(target.sum()), "other label": int((~true & ~target).sum())}


def resize_perturbations(clean: Tensor, adversarial: Tensor, scaling: str, distortion: float) -> Tensor:
    """Each perturbation x' − x of (N, d) layer outputs in [0, 1] resized to RMS ``distortion``: all of them
    (``"fixed"``), or those larger (``"cap"``); then clipped to [0, 1]. A zero perturbation (a failed
    search) stays zero."""
    if scaling not in POOL_SCALINGS[1:]:
        raise ValueError(f"unknown scaling {scaling!r}; choose one of {POOL_SCALINGS[1:]}")
    delta = adversarial - clean
    rms = delta.pow(2).mean(1, keepdim=True).sqrt()
    factor = torch.where(rms > 0, distortion / rms.clamp_min(1e-30), torch.ones_like(rms))
    if scaling == "cap":
        factor = factor.clamp(max=1.0)
    return (clean + factor * delta).clamp(0, 1)


def refresh_record(result: AttackResult) -> dict[str, float]:
    """What one pool's refresh made, from its search's result: see :meth:`AdversarialPool.refresh`."""
    found = result.distortion[result.success].double()
    quantiles = found.quantile(torch.tensor([0.5, 0.9], dtype=torch.float64)).tolist() if len(found) else [math.nan] * 2
    return {"replaced": len(result.success), "success": result.success.double().mean().item(),
            "median distortion": quantiles[0], "p90 distortion": quantiles[1]}


POOL_KEPT = 1000
"""Examples of the input pool that :class:`TrainingCurve` keeps at the end of training."""


@dataclass
class TrainingCurve:
    """What :func:`adversarial_fit` did.

    Attributes:
        epochs: 1, 2, … for each recorded point.
        train_loss: the mean clean minibatch loss of each epoch.
        test_error: the error (%) on the evaluation set after each epoch (empty without one).
        refreshes: pool refreshes done.
        seconds: wall time.
        refresh_log: one entry per pool and refresh: ``step``, ``epoch`` (from 0), ``layer`` and the
            record of :meth:`AdversarialPool.refresh`.
        input_pool: with a pool at the input, :data:`POOL_KEPT` of its examples at the end of training
            (:meth:`AdversarialPool.kept`: ``inputs`` (n, 784) in [0, 1], ``labels``, ``targets``), for
            an independent network to say what they show; else empty.
    """

    epochs: list[int]
    train_loss: list[float]
    test_error: list[float]
    refreshes: int
    seconds: float
    refresh_log: list[dict[str, float]] = field(default_factory=list)
    input_pool: dict[str, Tensor] = field(default_factory=dict)


def _stacked_forward(h: Tensor, weights: list[Tensor], biases: list[Tensor],
                     masks: list[Tensor | None] | None = None) -> Tensor:
    """Sigmoid layers of S networks at once: (S, B, d) through weights (S, out, in) and biases (S, out), a
    sigmoid after every layer but the last, hidden output j multiplied by ``masks[j]`` where given."""
    out = h
    for j, (weight, bias) in enumerate(zip(weights, biases)):
        out = torch.baddbmm(bias.unsqueeze(1), out, weight.transpose(1, 2))
        if j < len(weights) - 1:
            out = torch.sigmoid(out)
            mask = masks[j] if masks is not None else None
            if mask is not None:
                out = out * mask
    return out


class StackedSigmoidMLP(nn.Module):
    """S sigmoid networks of one shape as one module: each layer's weights stacked (S, out, in) and
    biases (S, out), so that one batched matrix product (``torch.baddbmm``) runs a layer of every
    network at once. Built from S :class:`~intriguing.models.SigmoidMLP` (their weights copied);
    :meth:`write_back` copies the trained weights back into them.
    """

    def __init__(self, models: list[SigmoidMLP]) -> None:
        super().__init__()
        if not models:
            raise ValueError("no network to stack")
        shapes = {tuple(tuple(m.weight.shape) for m in _layers(model)) for model in models}
        if len(shapes) != 1:
            raise ValueError(f"stacked networks must share their layer shapes, got {sorted(shapes)}")
        per_layer = list(zip(*(_layers(model) for model in models)))
        self.weights = nn.ParameterList([nn.Parameter(torch.stack([m.weight.detach() for m in layer])) for layer in per_layer])
        self.biases = nn.ParameterList([nn.Parameter(torch.stack([m.bias.detach() for m in layer])) for layer in per_layer])

    def __len__(self) -> int:
        return len(self.weights[0])

    def forward_from(self, h: Tensor, k: int, masks: list[Tensor | None] | None = None) -> Tensor:
        """Every network's logits from its layer-k outputs: (S, B, d_k) -> (S, B, 10). ``masks[j]``, if
        given, multiplies hidden output j + 1 (dropout's scaled masks, (S, B, d))."""
        return _stacked_forward(h, list(self.weights)[k:], list(self.biases)[k:], masks[k:] if masks else None)

    def cap_norms(self, max_norm: float) -> None:
        """Shrink, in place, every unit's incoming weights (a row of a layer's (out, in) weights) whose L2 norm
        exceeds ``max_norm`` to that norm; biases are left alone."""
        with torch.no_grad():
            for w in self.weights:
                w.view(-1, w.shape[-1]).renorm_(2, 0, max_norm)

    def network(self, i: int) -> SigmoidMLP:
        """Network ``i`` as a :class:`~intriguing.models.SigmoidMLP` in eval mode, its weights copied now."""
        hidden = tuple(w.shape[1] for w in self.weights)[:-1]
        model = SigmoidMLP(hidden).to(self.weights[0].device)
        with torch.no_grad():
            for layer, w, b in zip(_layers(model), self.weights, self.biases):
                layer.weight.copy_(w[i])
                layer.bias.copy_(b[i])
        return model.eval()

    def write_back(self, models: list[SigmoidMLP]) -> None:
        """Copy each network's weights into ``models`` (in stacking order)."""
        with torch.no_grad():
            for i, model in enumerate(models):
                for layer, w, b in zip(_layers(model), self.weights, self.biases):
                    layer.weight.copy_(w[i].to(layer.weight.device))
                    layer.bias.copy_(b[i].to(layer.bias.device))


class StackedNetworkAbove(RowwiseModel):
    """The layers above layer ``k`` of every network of a stack, for one search of S × n examples laid out
    network by network (rows i·n … (i + 1)·n − 1 belong to network i): each row's logits come from its own
    network (:class:`intriguing.attacks.RowwiseModel`). The rows a call is given are scattered into an
    (S, n, d_k) block, which one batched product per layer runs (no host synchronisation), and gathered back.
    The weights are copied when it is made.

    Args:
        stack: the networks.
        k: the layer whose outputs the rows hold (0: the input).
        per_network: n, the examples of each network.
    """

    def __init__(self, stack: StackedSigmoidMLP, k: int, per_network: int) -> None:
        super().__init__()
        if not 0 <= k < len(stack.weights):
            raise ValueError(f"layer {k} does not exist: the networks have the input (0) and "
                             f"{len(stack.weights) - 1} hidden layer(s)")
        self.k, self.networks, self.per_network = k, len(stack), per_network
        self.above = len(stack.weights) - k
        for j in range(self.above):
            self.register_buffer(f"weight{j}", stack.weights[k + j].detach().clone())
            self.register_buffer(f"bias{j}", stack.biases[k + j].detach().clone())

    def forward(self, h: Tensor, rows: Tensor) -> Tensor:
        """(R, ...) layer-k outputs of the examples ``rows`` (R,) -> (R, 10) logits, each of its own network."""
        flat = h.flatten(1)
        block = flat.new_zeros(self.networks * self.per_network, flat.shape[1]).index_put((rows,), flat)
        weights = [getattr(self, f"weight{j}") for j in range(self.above)]
        biases = [getattr(self, f"bias{j}") for j in range(self.above)]
        logits = _stacked_forward(block.view(self.networks, self.per_network, -1), weights, biases)
        return logits.reshape(self.networks * self.per_network, -1)[rows]


def refresh_stack(pools: list[AdversarialPool], stack: StackedSigmoidMLP, data: Split, share: float,
                  generators: list[torch.Generator], settings: SearchSettings, *, target: str = "random",
                  scaling: str = "as found", distortion: float = 0.0, times: PhaseTimes | None = None,
                  stacked: bool = True) -> list[dict[int, dict[str, float]]]:
    """:meth:`AdversarialPool.refresh` of every network's pools (``pools[i]`` of network i, drawing from
    ``generators[i]``): each network's draws are those it would make alone. With ``stacked``, each layer's
    examples of every network are searched in one call (:class:`StackedNetworkAbove`), else network by
    network; the two differ by float rounding only.

    Returns:
        Per network, what :meth:`AdversarialPool.refresh` returns.
    """
    networks = [stack.network(i) for i in range(len(stack))]
    if not stacked or len(networks) == 1:
        return [pool.refresh(net, data, share, g, settings, target=target, scaling=scaling, distortion=distortion,
                             times=times) for pool, net, g in zip(pools, networks, generators)]
    made: list[dict[int, dict[str, float]]] = [{} for _ in networks]
    for k in pools[0].layers:
        with _phase(times, f"search, layer {k}"):
            drawn = [pool.draw(k, net, data, share, g, target) for pool, net, g in zip(pools, networks, generators)]
            n = len(drawn[0][1])
            with torch.no_grad():
                h = [layer_output(net.eval(), images.to(next(net.parameters()).device), k).cpu()
                     for net, (images, _, _) in zip(networks, drawn)]
            # Searched in calls of at most the device's batch: each call takes a share of every network's examples.
            share_of_call = max(1, default_batch_size(stack.weights[0].device) // len(networks))
            pieces: list[list[tuple[Tensor, ...]]] = [[] for _ in networks]  # per network, its results in order
            for start in range(0, n, share_of_call):
                part = slice(start, min(n, start + share_of_call))
                block = torch.cat([x[part] for x in h])
                result = min_distortion_attack(
                    StackedNetworkAbove(stack, k, part.stop - part.start), block.view(len(block), 1, 1, -1),
                    torch.cat([d[2][part] for d in drawn]), labels=torch.cat([d[1][part] for d in drawn]),
                    settings=settings, batch_size=len(block), progress=False)
                fields = (result.adversarial, result.success, result.distortion, result.c)
                for i, piece in enumerate(zip(*(t.tensor_split(len(networks)) for t in fields))):
                    pieces[i].append(piece)
            for i, (pool, net, g, (images, labels, targets)) in enumerate(zip(pools, networks, generators, drawn)):
                found = AttackResult(*(torch.cat(parts) for parts in zip(*pieces[i])))
                pool.put(k, net, images, found.adversarial.flatten(1), labels, targets, g, scaling, distortion)
                made[i][k] = refresh_record(found)
    return made


STACKED_SEARCH = {"cpu": False, "cuda": True}
"""Whether :func:`adversarial_fit_many` searches the pools of its networks together (:func:`refresh_stack`), per
device type: see ``benchmarks/adversarial_phases.py --compare-stacked`` for the measurement that decides it."""


DROPOUT_STREAM = 2**32
"""Added to a network's seed to seed its dropout masks' generator, apart from its minibatch order and pools."""


def _dropout_mask(shape: tuple[int, ...], p: float, generators: list[torch.Generator], dev: torch.device) -> Tensor:
    """(S, *shape) inverted-dropout masks (0 or 1 / (1 − p)), network i's drawn from ``generators[i]``."""
    keep = to_device(torch.stack([torch.rand(shape, generator=g) >= p for g in generators]), dev)
    return keep.to(torch.float32) / (1 - p)


def adversarial_fit(model: SigmoidMLP, data: Split, settings: AdversarialTrainingSettings, *,
                    weight_decay: tuple[float, ...], seed: int, evaluation: Split | None = None,
                    progress: bool = True, times: PhaseTimes | None = None) -> TrainingCurve:
    """:func:`adversarial_fit_many` for one network: see there."""
    return adversarial_fit_many([model], data, settings, weight_decay=weight_decay, seeds=[seed],
                                evaluation=evaluation, progress=progress, times=times)[0]


def adversarial_fit_many(models: list[SigmoidMLP], data: Split, settings: AdversarialTrainingSettings, *,
                         weight_decay: tuple[float, ...], seeds: list[int], evaluation: Split | None = None,
                         progress: bool = True, times: PhaseTimes | None = None,
                         stacked_search: bool | None = None) -> list[TrainingCurve]:
    """Train ``models`` in place on minibatches of ``data``, mixing in examples of their pools; all of
    them at once, as one :class:`StackedSigmoidMLP`.

    Each network's training is its own, as if trained alone: its seed draws its minibatch order, its
    pools' images, targets and slots, and (from seed + :data:`DROPOUT_STREAM`) its dropout masks; its
    pools are made against it alone. Stacking changes only how the arithmetic is batched: without pools a
    network trained with others equals the same network trained alone to float rounding (bitwise, in one
    epoch of three full-profile networks on a CPU); with pools, rounding can tip the pool search's discrete
    choices, and the weights drifted apart by up to 6e-4 in that epoch.

    Every step's loss is the clean minibatch's cross-entropy (with ``fgsm_epsilon``, weighted with that of
    its fast-gradient-sign examples, :func:`fast_gradient_sign`), plus that of ``mix`` pooled examples
    per clean one (split equally between the pooled layers, each entering the network at its
    layer), plus ½ λ Σw² per weight layer. Every ``refresh_every`` steps each pool has
    ``refresh_share`` of its examples replaced by new ones made against the network as it is then.

    Args:
        models: untrained sigmoid networks of one shape; left on the CPU in eval mode.
        data: training images (N, 1, 28, 28) in [0, 1] and labels (N,).
        settings: see :class:`AdversarialTrainingSettings`.
        weight_decay: λ for each weight layer, input side first.
        seeds: one per network.
        evaluation: a labelled set whose error is recorded after every epoch.
        progress: show a progress bar.
        times: where to record the wall time (and FLOPs) of the phases ``training steps``,
            ``search, layer k`` (each pooled layer's refreshes, every network's) and ``evaluation``
            (:mod:`intriguing.phases`); None: not recorded, and the device is never waited for.
        stacked_search: search every network's pools in one call (:func:`refresh_stack`); None: as
            :data:`STACKED_SEARCH` says for the device.

    Returns:
        One :class:`TrainingCurve` per network (``seconds``: the wall time of the whole stack).

    Raises:
        ValueError: invalid images or labels (NaN, outside [0, 1], one label per image), weight decay,
            layers, or a seed count other than the networks'.
        FloatingPointError: a network's loss became NaN or infinite; the message names its seed and the step.
    """
    cache.forbid_compute("adversarial training")
    check_split(data, "the training data")
    if len(data) == 0:
        raise ValueError("cannot train on an empty set")
    if evaluation is not None:
        check_split(evaluation, "the evaluation set")
    if len(seeds) != len(models):
        raise ValueError(f"{len(seeds)} seeds for {len(models)} networks")
    n_layers = len(_layers(models[0])) if models else 0
    if len(weight_decay) != n_layers:
        raise ValueError(f"{len(weight_decay)} weight-decay values for {n_layers} weight layers")
    if not all(0 <= lam < math.inf for lam in weight_decay):
        raise ValueError(f"weight decay must be finite and non-negative, got {weight_decay}")
    for k in settings.pool_layers:
        _check_layer(models[0], k)
    dev = device()
    stack = StackedSigmoidMLP(models).to(dev)
    n_nets = len(models)
    images, labels = data.images.to(dev).flatten(1), data.labels.to(dev)
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    dropout_generators = [torch.Generator().manual_seed(seed + DROPOUT_STREAM) for seed in seeds]
    pools = [AdversarialPool(settings.pool_layers, settings.pool_size) for _ in models]
    opt: torch.optim.Optimizer
    fused = dev.type == "cuda" or None  # one kernel per step on a GPU; the CPU keeps torch's default (foreach)
    if settings.optimizer == "adam":
        opt = torch.optim.Adam(stack.parameters(), lr=settings.lr, fused=fused)
    else:
        opt = torch.optim.SGD(stack.parameters(), lr=settings.lr, momentum=SGD_MOMENTUM, nesterov=True, fused=fused)
    schedule: torch.optim.lr_scheduler.LRScheduler
    if settings.schedule == "halving":
        schedule = torch.optim.lr_scheduler.MultiStepLR(
            opt, milestones=[settings.epochs // 2, (3 * settings.epochs) // 4], gamma=0.5)
    else:
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=settings.epochs)
    per_layer = settings.pooled_per_layer()
    widths = [w.shape[1] for w in stack.weights]
    pooled_weight = settings.mix / len(settings.pool_layers) if settings.pool_layers else 0.0

    def masks(batch: int) -> list[Tensor | None]:
        if not settings.dropout_hidden:
            return [None] * len(widths)
        return [_dropout_mask((batch, d), settings.dropout_hidden, dropout_generators, dev) for d in widths]

    def cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
        """(S, B, 10), (S, B) -> (S,): each network's mean cross-entropy."""
        return F.cross_entropy(logits.transpose(1, 2), targets, reduction="none").mean(1)

    if evaluation is not None:
        eval_images, eval_labels = evaluation.images.to(dev).flatten(1), evaluation.labels.to(dev)
    curves = [TrainingCurve([], [], [], 0, 0.0) for _ in models]
    start, step = time.perf_counter(), 0
    for epoch in tqdm(range(settings.epochs), desc="adversarial training", disable=not progress, leave=False):
        orders = to_device(torch.stack([torch.randperm(len(data), generator=g) for g in generators]), dev)
        # summed on the device: reading the loss every step would sync a GPU hundreds of times per epoch
        total = torch.zeros(n_nets, dtype=torch.float64, device=dev)
        first_bad = torch.full((n_nets,), -1, dtype=torch.int64, device=dev)  # each network's first non-finite step
        pooling = per_layer and epoch >= settings.pool_start
        for batch in orders.split(settings.batch_size, dim=1):
            if pooling and (not pools[0].inputs or step % settings.refresh_every == 0):
                made = refresh_stack(pools, stack, data, settings.refresh_share, generators, settings.search,
                                     target=settings.pool_target, scaling=settings.pool_scaling,
                                     distortion=settings.pool_distortion, times=times,
                                     stacked=STACKED_SEARCH[dev.type] if stacked_search is None else stacked_search)
                for curve, records in zip(curves, made):
                    curve.refresh_log += [{"step": step, "epoch": epoch, "layer": k, **record}
                                          for k, record in records.items()]
                    curve.refreshes += 1
            with _phase(times, "training steps"):
                x, y = images[batch], labels[batch]  # (S, B, 784), (S, B)
                if settings.dropout_input:
                    x = x * _dropout_mask(tuple(x.shape[1:]), settings.dropout_input, dropout_generators, dev)
                loss = cross_entropy(stack.forward_from(x, 0, masks(x.shape[1])), y)
                total += loss.detach().double() * x.shape[1]
                if settings.fgsm_epsilon:
                    x_fgsm = fast_gradient_sign(lambda z: stack.forward_from(z, 0), x, y, settings.fgsm_epsilon)
                    loss = FGSM_CLEAN_WEIGHT * loss + (1 - FGSM_CLEAN_WEIGHT) * cross_entropy(
                        stack.forward_from(x_fgsm, 0, masks(x.shape[1])), y)
                for k in settings.pool_layers if pooling else ():
                    sampled = [pool.sample(k, per_layer, g) for pool, g in zip(pools, generators)]
                    h, h_labels = torch.stack([s[0] for s in sampled]), torch.stack([s[1] for s in sampled])
                    loss = loss + pooled_weight * cross_entropy(stack.forward_from(h, k, masks(per_layer)), h_labels)
                loss = loss + sum(0.5 * lam * squared_norm(w, (1, 2)) for lam, w in zip(weight_decay, stack.weights))
                first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), step, first_bad)
                opt.zero_grad()
                loss.sum().backward()
                opt.step()
                if settings.max_norm:
                    stack.cap_norms(settings.max_norm)
            step += 1
        bad = first_bad.tolist()  # checked once an epoch: reading it every step would sync a GPU
        for seed, at in zip(seeds, bad):
            if at >= 0:
                raise FloatingPointError(f"adversarial training (seed {seed}): the loss is not finite at minibatch "
                                         f"step {at} (epoch {epoch + 1}); lower lr (now {settings.lr})")
        schedule.step()
        means = (total / len(data)).tolist()
        if evaluation is not None:
            with torch.no_grad(), _phase(times, "evaluation"):
                logits = stack.forward_from(eval_images.expand(n_nets, *eval_images.shape), 0)
                errors = (100 * (logits.argmax(2) != eval_labels).double().mean(1)).tolist()
        for i, curve in enumerate(curves):
            curve.epochs.append(epoch + 1)
            curve.train_loss.append(means[i])
            if evaluation is not None:
                curve.test_error.append(errors[i])
    stack.write_back(models)
    seconds = time.perf_counter() - start
    for model, curve, pool in zip(models, curves, pools):
        model.cpu().eval()
        curve.seconds = seconds
        if 0 in pool.inputs:
            curve.input_pool = pool.kept(0, POOL_KEPT)
    return curves
