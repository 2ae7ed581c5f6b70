"""The cached, profile-keyed results that several chapters share, and the one builder of their cache keys.

- trained networks (:func:`trained_network`), on the images a profile trains them on
  (:func:`training_split`), each in as many replicates as the profile asks (:func:`replicates`);
- the images a profile attacks, with their random wrong targets drawn once (:func:`attacked_images`);
- adversarial sets for training and test images (:func:`adversarial_set`), and the minimum over
  all nine targets (:func:`min_over_targets`).

Every result is stored by :mod:`intriguing.cache` under a key from :func:`result_key`: the
network's training configuration (its seed and replicate included), the search's settings, the
target seed and whatever selects the images.

A replicate reruns an experiment with other seeds: replicate r > 0 of a network starts from the
registry's seed + :data:`REPLICATE_SEED_STRIDE` × r, trains on the P1/P2 split drawn with seed r
(for the networks trained on P1 or P2), and is attacked towards targets drawn with seed r.
Replicate 0 is the book's run. A chapter that caches a result of its own (a timed peer table,
an exact optimum) calls :func:`cached` with the same key builder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, astuple, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import cache
from .adversarial_training import RECORD_FORMAT
from .attacks import AttackResult, SearchSettings, default_batch_size, min_distortion_attack, random_targets
from .data import N_CLASSES, Split, load_mnist, p1_p2_split
from .evaluate import error_table
from .hardware import device
from .imagenet import EFFICIENTNET_LITE0_SHA256
from .models import NETWORKS, NetworkSpec, build_model, get_spec
from .paper import TABLE3
from .profiles import Profile, get_profile
from .sparse_autoencoder import SPARSE_AE
from .train import DECAY_MODES, DEFAULT_DECAY, FitLog, TrainedNetwork, fit

__all__ = ["ATTACK_CHUNK", "asked_for", "REPLICATE_SEED_STRIDE", "TARGET_CHOICES", "TargetedImages", "adversarial_set",
           "adversarial_sets", "attacked_images", "cached", "min_over_targets", "random_and_nearest",
           "replicate_spec", "replicates", "result_key", "table3_errors", "trained_models", "trained_network",
           "training_config", "training_split"]

T = TypeVar("T")

TRAINING_FORMAT = 2  # bump to retrain every network after a change to how networks are trained
SUBSET_SEED = 1234  # the seeded subset of a profile with train_subset
ATTACK_CHUNK = 5000  # images per cached piece of an adversarial set: a killed run loses at most one piece
REPLICATE_SEED_STRIDE = 100  # replicate r of a network starts from its registry seed + 100 r
OTHER_NETWORKS = {"efficientnet-lite0": {"weights": EFFICIENTNET_LITE0_SHA256}}
"""Networks that are loaded, not trained, keyed by what identifies their weights."""


def training_split(train_set: str, profile: Profile, replicate: int = 0) -> Split:
    """The training images a network sees: all of MNIST's training set, or P1 or P2 of the split drawn
    with seed ``replicate``, cut to the profile's seeded subset (each half to half of it)."""
    train = load_mnist("train")
    if train_set == "train":
        index, size = torch.arange(len(train)), profile.train_subset
    elif train_set in ("P1", "P2"):
        index = p1_p2_split(seed=_check_replicate(replicate))[0 if train_set == "P1" else 1]
        size = None if profile.train_subset is None else profile.train_subset // 2
    else:
        raise ValueError(f"unknown training set {train_set!r}; choose 'train', 'P1' or 'P2'")
    if size is not None:
        pick = torch.randperm(len(index), generator=torch.Generator().manual_seed(SUBSET_SEED))[:size]
        index = index[pick.sort().values]
    return train.subset(index)


def _check_replicate(replicate: int) -> int:
    if isinstance(replicate, bool) or not isinstance(replicate, int) or replicate < 0:
        raise ValueError(f"a replicate is a non-negative integer, got {replicate!r}")
    return replicate


def replicate_spec(name: str, replicate: int = 0) -> NetworkSpec:
    """Network ``name``'s registry entry, with replicate ``replicate``'s seed."""
    spec = get_spec(name)
    if _check_replicate(replicate) == 0:
        return spec
    return replace(spec, seed=spec.seed + REPLICATE_SEED_STRIDE * replicate)


def replicates(name: str, profile: Profile | str | None = None) -> range:
    """The replicates the profile trains of network ``name``: 0, 1, …"""
    get_spec(name)  # an unknown name fails here, not silently as one replicate
    return range(get_profile(profile).replicates.get(name, 1))


def training_config(spec: NetworkSpec, profile: Profile, decay_mode: str, to_cap: bool = False,
                    replicate: int = 0) -> dict[str, Any]:
    """Everything that determines a trained network (its seed is in ``spec``): its cache key."""
    config: dict[str, Any] = {"format": TRAINING_FORMAT, "spec": asdict(spec), "decay_mode": decay_mode,
                              "train_subset": profile.train_subset}
    if replicate:
        config["replicate"] = replicate  # it also draws the P1/P2 split
    if spec.family != "conv":
        config["converge_below"] = None if to_cap else profile.converge_below
    if spec.family == "conv":
        config["conv_epochs"] = profile.conv_epochs
    elif spec.family == "autoencoder":
        config["iterations"] = [profile.lbfgs_iterations["autoencoder"], profile.lbfgs_iterations["ae_softmax"]]
        config["sparse_ae"] = asdict(SPARSE_AE)
    else:
        config["iterations"] = profile.lbfgs_iterations[spec.family]
    return config


def trained_network(name: str, profile: Profile | str | None = None, decay_mode: str = DEFAULT_DECAY,
                    replicate: int = 0, to_cap: bool = False) -> TrainedNetwork:
    """Network ``name`` trained as the profile says, or loaded from the cache.

    Args:
        name: a network of :data:`intriguing.models.NETWORKS`, e.g. ``"softmax1"``.
        profile: a :class:`Profile`, a profile name, or None for the active profile.
        decay_mode: ``"half"``, ``"sum"`` or ``"per_unit"`` (see :func:`intriguing.train.weight_decay`).
        replicate: which replicate (0: the book's run; see the module's docstring).
        to_cap: train every L-BFGS stage to the profile's iteration cap, without the window test
            of ``profile.converge_below`` (the networks chapter's comparison).

    Returns:
        The trained network (eval mode, on the CPU) and its training logs.
    """
    if decay_mode not in DECAY_MODES:
        raise ValueError(f"unknown decay mode {decay_mode!r}; choose one of {DECAY_MODES}")
    spec = replicate_spec(name, replicate)
    profile = get_profile(profile)
    if to_cap and spec.family != "conv" and profile.converge_below is not None:
        stopped = trained_network(name, profile, decay_mode, replicate)
        if not any(log.stop == "window" for log in stopped.stages.values()):
            return stopped  # the window test stopped no stage: this run is the run to the cap
    config = training_config(spec, profile, decay_mode, to_cap, replicate)
    model = build_model(spec)
    # The networks chapter continues this run to the cap (:func:`intriguing.chapters.networks.cap_comparison`):
    # a stage the window test stops hands its state over to that run's checkpoint.
    continued = not to_cap and replicate == 0 and decay_mode == DEFAULT_DECAY and name in profile.cap_comparison

    def checkpoints(run: dict[str, Any]) -> Callable[[str], Path]:
        return lambda stage: cache.cache_path("checkpoints", f"{name}-{stage}", run)

    def compute() -> dict[str, Any]:
        stages = fit(model, spec, training_split(spec.train_set, profile, replicate), lbfgs_iterations=profile.lbfgs_iterations,
                     conv_epochs=profile.conv_epochs, converge_below=None if to_cap else profile.converge_below,
                     decay_mode=decay_mode, checkpoint=checkpoints(config),
                     handover=checkpoints(training_config(spec, profile, decay_mode, True, replicate))
                     if continued else None)
        from . import timing  # here, not above: `python -m intriguing.timing` must not find it imported

        for stage, log in stages.items():  # the seconds of this run, not those of a run it resumed
            timing.record("training", name, log.seconds - log.seconds_before, stage=stage, iterations=log.iterations,
                          stop=log.stop, seed=spec.seed, replicate=replicate, decay_mode=decay_mode, to_cap=to_cap)
        return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                "stages": {k: asdict(v) for k, v in stages.items()}}

    record = cache.cached("networks", name, config, compute)
    model.load_state_dict(record["state_dict"])
    model.cpu().eval()
    return TrainedNetwork(name, model, decay_mode, {k: FitLog(**v) for k, v in record["stages"].items()})


def asked_for(kind: str, name: str, config: dict[str, Any], profile: Profile | str | None = None) -> bool:
    """Whether this code, in ``profile``, would ask the cache for a result of ``kind`` and ``name`` under
    ``config``: the network it names must be trained as this code trains it (its training format, spec,
    seed and the profile's sizes), so a result made by another version of the code is recognised. An
    adversarially trained network (kind ``adversarial-training``) names no such network: its record's
    format (:data:`intriguing.adversarial_training.RECORD_FORMAT`) and the profile's training subset decide, for it
    and for the results computed on it. A result derived from others (its key's ``sets``) is asked for when every
    one of them is."""
    profile = get_profile(profile)
    if isinstance(config.get("sets"), dict):  # derived from other results: asked for when every one of them is
        return bool(config["sets"]) and config.get("train_subset", "missing") == profile.train_subset and \
            all(isinstance(key, dict) and asked_for(kind, str(name), key, profile) for name, key in config["sets"].items())
    identity = config if kind == "networks" else config.get("network", {})
    # a minibatch network of the adversarial-training chapter, or a result computed on one: no network to name
    trained_here = config if kind == "adversarial-training" else identity
    if kind == "adversarial-training" or (isinstance(identity, dict) and "settings" in identity):
        return isinstance(trained_here, dict) and trained_here.get("format") == RECORD_FORMAT and \
            trained_here.get("train_subset", "missing") == profile.train_subset
    if not isinstance(identity, dict) or "spec" not in identity:  # a loaded network: its weights' checksum
        return identity in [{"name": n, **v} for n, v in OTHER_NETWORKS.items()] and \
            config.get("train_subset", "missing") == profile.train_subset
    spec_name, replicate = identity["spec"].get("name"), identity.get("replicate", 0)
    if spec_name not in NETWORKS or (kind == "networks" and name != spec_name):
        return False
    spec = replicate_spec(spec_name, replicate)
    to_cap = "converge_below" in identity and identity["converge_below"] is None and profile.converge_below is not None
    decay = identity.get("decay_mode")
    if decay not in DECAY_MODES:
        return False
    expected = training_config(spec, profile, decay, to_cap, replicate)  # compared as JSON, as keys are hashed
    return cache.config_hash(identity) == cache.config_hash(expected) and \
        config.get("train_subset", profile.train_subset) == profile.train_subset


def trained_models(names: list[str], profile: Profile | str | None = None, replicate: int = 0,
                   to_cap: bool = False) -> dict[str, nn.Module]:
    """Name -> the trained model of replicate ``replicate`` (trained to the cap: see :func:`trained_network`),
    for each of ``names``."""
    return {name: trained_network(name, profile, replicate=replicate, to_cap=to_cap).model for name in names}


def table3_errors(profile: Profile | str | None = None, replicate: int = 0) -> pd.DataFrame:
    """Table 3's error columns (%): M1, M1' and M2 of one replicate on its P1, P2 (as the profile cuts
    them) and the test set. The networks chapter shows them; the cross-training-set chapter adds its
    distortions."""
    profile = get_profile(profile)
    return error_table(trained_models(list(TABLE3.index), profile, replicate),
                       {"Error on P1": training_split("P1", profile, replicate),
                        "Error on P2": training_split("P2", profile, replicate), "Error on Test": load_mnist("test")})


def result_key(network: str, profile: Profile, *, settings: SearchSettings | None = None, replicate: int = 0,
               decay_mode: str = DEFAULT_DECAY, to_cap: bool = False, **selection: Any) -> dict[str, Any]:
    """The cache key of a result computed on replicate ``replicate`` of ``network`` trained with the weight
    decay read as ``decay_mode`` (and to the cap: see :func:`trained_network`): what determines the network
    (its training configuration, or its weights' checksum), the search's settings, the profile's training
    subset and ``selection`` (the images, the target seed, …)."""
    if network in OTHER_NETWORKS:
        if replicate:
            raise ValueError(f"{network} is loaded, not trained: it has no replicate {replicate}")
        identity: dict[str, Any] = {"name": network, **OTHER_NETWORKS[network]}
    else:
        identity = training_config(replicate_spec(network, replicate), profile, decay_mode, to_cap, replicate)
    key = {"network": identity, "train_subset": profile.train_subset, **selection}
    if settings is not None:
        key["search"] = settings.key()
    return key


def cached(kind: str, network: str, profile: Profile, compute: Callable[[], T], *, name: str | None = None,
           settings: SearchSettings | None = None, replicate: int = 0, decay_mode: str = DEFAULT_DECAY,
           to_cap: bool = False, **selection: Any) -> T:
    """``compute()``'s result for replicate ``replicate`` of ``network`` (its weight decay read as
    ``decay_mode``, trained to the cap with ``to_cap``), stored under :func:`result_key` in the cache's ``kind``
    folder, as ``name`` (default: the network's)."""
    key = result_key(network, profile, settings=settings, replicate=replicate, decay_mode=decay_mode, to_cap=to_cap,
                     **selection)
    return cache.cached(kind, name or network, key, compute)


@dataclass(frozen=True)
class TargetedImages:
    """Labelled images, each with a random wrong target label.

    Attributes:
        images: (N, 1, 28, 28) in [0, 1].
        labels: (N,) true labels.
        targets: (N,) target labels, never equal to ``labels``.
        target_seed: the seed the targets were drawn with.
    """

    images: Tensor
    labels: Tensor
    targets: Tensor
    target_seed: int

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: slice) -> TargetedImages:
        return TargetedImages(self.images[index], self.labels[index], self.targets[index], self.target_seed)

    @property
    def split(self) -> Split:
        return Split(self.images, self.labels)


def attacked_images(split: str, profile: Profile | str | None = None, target_seed: int = 0) -> TargetedImages:
    """The images the profile attacks, with their random wrong targets: the training set (as the
    network saw it) or the test set, cut to the profile's ``attack_examples``."""
    profile = get_profile(profile)
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    images = training_split("train", profile) if split == "train" else load_mnist("test")
    if profile.attack_examples is not None:
        images = images.subset(slice(0, profile.attack_examples))
    return TargetedImages(images.images, images.labels, random_targets(images.labels, seed=target_seed), target_seed)


def adversarial_set(network: str, split: str = "train", profile: Profile | str | None = None,
                    settings: SearchSettings | None = None, target_seed: int | None = None,
                    examples: int | None = None, replicate: int = 0, decay_mode: str = DEFAULT_DECAY,
                    to_cap: bool = False, images: bool = True) -> tuple[TargetedImages, AttackResult]:
    """D(x, l) for every attacked image of ``split``, towards its random wrong target, on one replicate
    of the network, cached.

    Computed in pieces of :data:`ATTACK_CHUNK` images, each cached on its own, so an interrupted
    run resumes. Each piece's distortions (success, distortion and c, without the adversarial images) are
    also cached on their own, for callers that need no image: a reader who pulls a chapter's results then
    downloads kilobytes per piece instead of megabytes.

    Args:
        network: a network of :data:`intriguing.models.NETWORKS`.
        split: ``"train"`` or ``"test"``.
        profile: a :class:`Profile`, a profile name, or None for the active profile.
        settings: the search's settings (None: the profile's ``search``).
        target_seed: the seed of the random targets (None: the replicate's).
        examples: only the first ``examples`` of those images (None: all). The whole pieces that
            hold them are attacked: they are the whole set's first pieces, cached once for both.
        replicate: which replicate of the network (0: the book's run).
        decay_mode: the network trained with its weight decay read this way (:func:`trained_network`).
        to_cap: the network trained to the iteration cap, without the window test (:func:`trained_network`).
        images: False: the result's ``adversarial`` is empty (shape (0,)), read from the pieces' distortions
            alone (made from the pieces when first asked for).

    Returns:
        The attacked images (with labels and targets) and the :class:`AttackResult`.
    """
    profile = get_profile(profile)
    settings = settings or profile.search
    target_seed = replicate if target_seed is None else target_seed
    attacked = attacked_images(split, profile, target_seed)
    if examples is not None and examples < 1:
        raise ValueError(f"examples must be at least 1, got {examples}")
    count = len(attacked) if examples is None else min(examples, len(attacked))
    starts = list(range(0, count, ATTACK_CHUNK))
    keys = {start: result_key(network, profile, settings=settings, replicate=replicate, decay_mode=decay_mode,
                              to_cap=to_cap, split=split, attack_examples=profile.attack_examples,
                              target_seed=target_seed, start=start)
            for start in starts}
    names = {start: f"{network}-{split}-{start}" for start in starts}
    if not images:
        found = {start: cache.lookup("attacks", f"{names[start]}-distortions", {**keys[start], "images": False})
                 for start in starts}
        if any(found[start] is cache.MISSING for start in starts):
            with cache.unrecorded():  # the whole pieces are read only to make the distortions the caller asks for
                _, whole = adversarial_set(network, split, profile, settings, target_seed,
                                           min(len(attacked), starts[-1] + ATTACK_CHUNK), replicate, decay_mode, to_cap)
            for start in starts:
                if found[start] is cache.MISSING:
                    part = slice(start, start + ATTACK_CHUNK)
                    found[start] = {"success": whole.success[part].clone(), "distortion": whole.distortion[part].clone(),
                                    "c": whole.c[part].clone()}
                    cache.store("attacks", f"{names[start]}-distortions", {**keys[start], "images": False}, found[start])
        return attacked.subset(slice(0, count)), AttackResult(
            adversarial=torch.empty(0), **{key: torch.cat([found[start][key] for start in starts])[:count]
                                           for key in ("success", "distortion", "c")})
    pieces = {start: cache.lookup("attacks", names[start], keys[start]) for start in starts}
    missing = [start for start in starts if pieces[start] is cache.MISSING]
    # Missing pieces are attacked together, as many as fill one batch of the device (one at a time on a CPU,
    # ten on a GPU): an image's result does not depend on its batch (attacks.SearchSettings.network_precision has
    # the measurement), so each piece is stored as if alone.
    if missing:
        cache.forbid_compute(f"attacks {names[missing[0]]}")
        model = trained_network(network, profile, decay_mode, replicate=replicate, to_cap=to_cap).model
    together = max(1, default_batch_size(device()) // ATTACK_CHUNK)
    groups = [missing[i:i + together] for i in range(0, len(missing), together)]
    for group in tqdm(groups, desc=f"attacking {network} ({split})", disable=len(groups) <= 1, leave=False):
        parts = [attacked.subset(slice(start, start + ATTACK_CHUNK)) for start in group]
        result = min_distortion_attack(model, torch.cat([p.images for p in parts]), torch.cat([p.targets for p in parts]),
                                       labels=torch.cat([p.labels for p in parts]), settings=settings)
        split_at = [len(p) for p in parts]
        for start, *values in zip(group, *(value.split(split_at) for value in astuple(result))):
            pieces[start] = asdict(AttackResult(*(v.clone() for v in values)))
            cache.store("attacks", names[start], keys[start], pieces[start])
    result = AttackResult(**{key: torch.cat([pieces[start][key] for start in starts])[:count]
                              for key in pieces[starts[0]]})
    return attacked.subset(slice(0, count)), result


def adversarial_sets(networks: list[str], split: str, profile: Profile | str | None = None,
                     replicate: int = 0, to_cap: bool = False) -> tuple[TargetedImages, dict[str, Tensor]]:
    """The cached adversarial images of each network's replicate ``replicate`` (trained to the cap with
    ``to_cap``), on the profile's attacked images of ``split`` (towards the replicate's targets).

    Returns:
        The originals with their labels, and network -> adversarial images (N, 1, 28, 28).

    Raises:
        RuntimeError: an attack failed on some image, so the set is not wholly adversarial.
    """
    originals = attacked_images(split, profile, target_seed=replicate)
    adversarial = {}
    for name in networks:
        _, result = adversarial_set(name, split, profile, replicate=replicate, to_cap=to_cap)
        if not result.success.all():
            raise RuntimeError(f"the attack on {name} failed on {int((~result.success).sum())} images")
        adversarial[name] = result.adversarial
    return originals, adversarial


def min_over_targets(network: str, profile: Profile | str | None = None,
                     split: str = "train") -> tuple[TargetedImages, AttackResult]:
    """The true minimum distortion: D(x, l) for all nine wrong labels l, the closest kept, cached.

    Run on the first ``profile.min_target_examples`` attacked images of ``split``.

    Returns:
        Those images (their ``targets`` are the random ones of :func:`attacked_images`) and the
        :class:`AttackResult` of the closest target for each.
    """
    profile = get_profile(profile)
    model = trained_network(network, profile).model
    images = attacked_images(split, profile).subset(slice(0, profile.min_target_examples))

    def compute() -> dict[str, Tensor]:
        # All nine wrong labels of every image in one search (one batch on a GPU), then the closest kept.
        shifts = range(1, N_CLASSES)
        targets = torch.cat([(images.labels + shift) % N_CLASSES for shift in shifts])
        every = min_distortion_attack(model, images.images.repeat(len(shifts), 1, 1, 1), targets,
                                      labels=images.labels.repeat(len(shifts)), settings=profile.search)
        n = len(images)
        distortion = torch.where(every.success, every.distortion, torch.tensor(float("inf"))).view(len(shifts), n)
        closest = distortion.argmin(0) * n + torch.arange(n)  # the first of equals, as a loop over targets keeps
        return asdict(AttackResult(*(value[closest] for value in astuple(every))))

    where: dict[str, Any] = {} if split == "train" else {"split": split}  # training results predate the choice
    result = cached("attacks-min", network, profile, compute, settings=profile.search,
                    examples=profile.min_target_examples, **where)
    return images, AttackResult(**result)


TARGET_CHOICES = ("random target", "nearest target")
"""The two ways of choosing an image's target that :func:`random_and_nearest` compares."""


def random_and_nearest(network: str, split: str,
                       profile: Profile | str | None = None) -> tuple[TargetedImages, dict[str, AttackResult]]:
    """The first ``profile.min_target_examples`` attacked images of ``split``, attacked towards their
    random target (:func:`adversarial_set`) and towards the nearest wrong label (:func:`min_over_targets`).

    Returns:
        The images, and target choice (:data:`TARGET_CHOICES`) -> the :class:`AttackResult`.

    Raises:
        RuntimeError: an attack failed on some image, so a set is not wholly adversarial.
    """
    images, nearest = min_over_targets(network, profile, split=split)
    _, random = adversarial_set(network, split, profile, examples=len(images))
    results = dict(zip(TARGET_CHOICES, (random, nearest)))
    for choice, result in results.items():
        if not result.success.all():
            raise RuntimeError(f"the {choice} attack on {network} failed on {int((~result.success).sum())} images")
    return images, results
