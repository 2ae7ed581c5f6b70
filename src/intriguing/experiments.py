"""Our measurements laid out as the paper's tables, ready for :func:`intriguing.paper.compare_with_paper`."""

from __future__ import annotations

from dataclasses import asdict, astuple

import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from . import cache, paper, units
from .attacks import AttackResult, exact_linear_attack, min_distortion_attack, random_targets
from .data import N_CLASSES, Split, load_mnist
from .evaluate import error_table
from .imagenet import EFFICIENTNET_LITE0_SHA256, ImageSet, efficientnet_lite0, imagenet_samples
from .models import build_model, get_spec
from .peers import compare_attacks
from .profiles import Profile, device, get_profile
from .train import (DECAY_MODES, DEFAULT_DECAY, TrainedNetwork, train_network, training_config,
                    training_split)

__all__ = ["adversarial_set", "attacked_images", "decay_mode_table", "exact_comparison", "gaussian_noise",
           "imagenet_adversarial", "min_over_targets", "peer_table", "table1_distortion", "table1_errors",
           "table3_errors", "training_summary", "unit_coherence_table"]

TABLE1_NETWORKS = list(paper.TABLE1.index)
TABLE3_NETWORKS = list(paper.TABLE3.index)


def table1_errors(profile: Profile | str | None = None, decay_mode: str = DEFAULT_DECAY,
                  networks: list[str] | None = None) -> pd.DataFrame:
    """Table 1's error columns (%): each network on the images it was trained on and on the test set."""
    profile = get_profile(profile)
    networks = networks or TABLE1_NETWORKS
    trained = {name: train_network(name, profile, decay_mode).model for name in networks}
    train_err = error_table(trained, {"Training error": training_split("train", profile)})
    test_err = error_table(trained, {"Test error": load_mnist("test")})
    return pd.concat([train_err, test_err], axis=1)


def table3_errors(profile: Profile | str | None = None) -> pd.DataFrame:
    """Table 3's error columns (%): M1, M1' and M2 on P1, P2 (as the profile cuts them) and the test set."""
    profile = get_profile(profile)
    trained = {name: train_network(name, profile).model for name in TABLE3_NETWORKS}
    return error_table(trained, {"Error on P1": training_split("P1", profile),
                                 "Error on P2": training_split("P2", profile),
                                 "Error on Test": load_mnist("test")})


def decay_mode_table(profile: Profile | str | None = None) -> pd.DataFrame:
    """The softmax models' errors under each weight-decay reading, with their mean distance to the paper.

    Returns:
        One row per (decay mode, network) with ``Training error`` and ``Test error`` (%), and
        ``mean |diff|`` (percentage points), the mode's mean absolute difference from Table 1
        over its six softmax numbers.
    """
    profile = get_profile(profile)
    softmax = ["softmax1", "softmax2", "softmax3"]
    frames = {}
    for mode in DECAY_MODES:
        ours = table1_errors(profile, mode, softmax)
        gap = (ours - paper.TABLE1.loc[softmax, ours.columns]).abs().to_numpy().mean()
        frames[mode] = ours.assign(**{"mean |diff|": gap})
    return pd.concat(frames, names=["decay mode", "network"])


def training_summary(networks: list[TrainedNetwork]) -> pd.DataFrame:
    """One row per network and training stage: iterations, whether L-BFGS converged, seconds, final loss."""
    rows = [{"network": net.name, "stage": stage, "iterations": log.iterations, "converged": log.converged,
             "seconds": round(log.seconds, 1), "final loss": log.losses[-1]}
            for net in networks for stage, log in net.stages.items()]
    return pd.DataFrame(rows).set_index(["network", "stage"])


ATTACK_SETTINGS = {"c_steps": 10, "c_init": 1.0, "max_iter": 50, "memory": 10, "tol": 1e-4, "margin": 1e-3}
"""The minimum-distortion search's settings, the same for every chapter and profile."""
ATTACK_CHUNK = 5000  # images per cached piece: a killed run loses at most one piece
SHARPENED_LOGIT_SCALE = 10.0
"""The logit scale of the sharpened objective that measures the solver against the exact optimum."""


def _attack_config(network: str, profile: Profile, settings: dict, **extra) -> dict:
    """The cache key of attack results: the network's training configuration, the search's
    settings and whatever else selects the images."""
    return {"network": training_config(get_spec(network), profile, DEFAULT_DECAY), "attack": settings,
            "train_subset": profile.train_subset, **extra}


def attacked_images(split: str, profile: Profile | str | None = None) -> Split:
    """The images the profile attacks: the training set (as the network saw it) or the test set,
    cut to the profile's ``attack_examples``."""
    profile = get_profile(profile)
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    images = training_split("train", profile) if split == "train" else load_mnist("test")
    return images if profile.attack_examples is None else images.subset(slice(0, profile.attack_examples))


def adversarial_set(network: str, split: str = "train", profile: Profile | str | None = None,
                    target_seed: int = 0, logit_scale: float = 1.0) -> tuple[Split, AttackResult]:
    """D(x, l) for every attacked image of ``split``, with random wrong targets, cached.

    Computed in pieces of :data:`ATTACK_CHUNK` images, each cached on its own, so an interrupted
    run resumes; keyed by the network's training configuration, the attack settings and the images.
    ``logit_scale`` other than 1 (the paper's objective) sharpens the loss; see
    :func:`intriguing.attacks.min_distortion_attack`.

    Returns:
        The attacked images (with their true labels) and the :class:`AttackResult`.
    """
    profile = get_profile(profile)
    trained = train_network(network, profile)
    images = attacked_images(split, profile)
    targets = random_targets(images.labels, seed=target_seed)
    settings = ATTACK_SETTINGS if logit_scale == 1 else {**ATTACK_SETTINGS, "logit_scale": logit_scale}
    config = _attack_config(network, profile, settings, split=split, attack_examples=profile.attack_examples,
                            target_seed=target_seed)
    pieces = []
    starts = range(0, len(images), ATTACK_CHUNK)
    for start in tqdm(starts, desc=f"attacking {network} ({split})", disable=len(starts) == 1, leave=False):
        part = slice(start, start + ATTACK_CHUNK)

        def compute() -> dict:
            result = min_distortion_attack(trained.model, images.images[part], targets[part],
                                           labels=images.labels[part], **settings)
            return asdict(result)

        pieces.append(cache.cached("attacks", f"{network}-{split}-{start}", {**config, "start": start}, compute))
    result = AttackResult(**{key: torch.cat([p[key] for p in pieces]) for key in pieces[0]})
    return images, result


def min_over_targets(network: str, profile: Profile | str | None = None) -> AttackResult:
    """The true minimum distortion: D(x, l) for all nine wrong labels l, the closest kept.

    Run on the first ``profile.min_target_examples`` attacked training images, cached.
    """
    profile = get_profile(profile)
    trained = train_network(network, profile)
    images = attacked_images("train", profile).subset(slice(0, profile.min_target_examples))
    config = _attack_config(network, profile, ATTACK_SETTINGS, examples=profile.min_target_examples)

    def compute() -> dict:
        best: AttackResult | None = None
        for shift in tqdm(range(1, N_CLASSES), desc=f"{network}: all targets", leave=False):
            targets = (images.labels + shift) % N_CLASSES
            result = min_distortion_attack(trained.model, images.images, targets, labels=images.labels,
                                           progress=False, **ATTACK_SETTINGS)
            if best is None:
                best = result
                continue
            closer = result.success & (~best.success | (result.distortion < best.distortion))
            best = AttackResult(*(torch.where(closer.view(-1, *[1] * (new.ndim - 1)), new, old)
                                  for new, old in zip(astuple(result), astuple(best))))
        return asdict(best)

    return AttackResult(**cache.cached("attacks-min", network, config, compute))


def table1_distortion(profile: Profile | str | None = None) -> pd.DataFrame:
    """Table 1's "Av. min. distortion" column, with random targets and with the minimum over targets.

    Returns:
        One row per Table 1 network: ``Av. min. distortion`` (random targets, the attacked
        training images), its success rate (%), and ``min over targets`` with its example count.
    """
    profile = get_profile(profile)
    rows = {}
    for name in TABLE1_NETWORKS:
        _, random = adversarial_set(name, "train", profile)
        minimum = min_over_targets(name, profile)
        rows[name] = {"Av. min. distortion": random.distortion[random.success].mean().item(),
                      "success (%)": 100 * random.success.double().mean().item(),
                      "min over targets": minimum.distortion[minimum.success].mean().item(),
                      "examples": len(random.success)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("network")


def gaussian_noise(images: Tensor, stddev: float, seed: int = 0, clip: bool = False) -> Tensor:
    """Images plus seeded Gaussian noise of the given stddev. (N, ...) -> (N, ...).

    Unclipped by default, as the paper's controls evidently were: Table 2 lists the noise's
    stddev as its average distortion, which only unclipped noise has, and Figure 7's 51 %
    accuracy at stddev 1 is what unclipped noise gives (clipped noise gives far less).
    """
    gen = torch.Generator().manual_seed(seed)
    noisy = images + stddev * torch.randn(images.shape, generator=gen)
    return noisy.clamp(0, 1) if clip else noisy


def exact_comparison(profile: Profile | str | None = None) -> pd.DataFrame:
    """Our search against the exact optimum on the linear softmax models, on every attacked image.

    Two objectives are compared: the paper's (cross-entropy on the logits) and a sharpened one
    (cross-entropy on :data:`SHARPENED_LOGIT_SCALE` × the logits), whose minimiser is not pulled
    off the closest point of the target region by the soft maximum.

    Returns:
        One row per softmax network: the exact QP's mean distortion, each objective's mean
        distortion and its ratio to the exact one (over the images all three succeed on), and the
        success rates (%).
    """
    profile = get_profile(profile)
    rows = {}
    for name in ["softmax1", "softmax2", "softmax3"]:
        images, paper_objective = adversarial_set(name, "train", profile)
        _, sharpened = adversarial_set(name, "train", profile, logit_scale=SHARPENED_LOGIT_SCALE)
        linear = train_network(name, profile).model.weight_layers()[0]
        exact = AttackResult(**cache.cached(
            "attacks-exact", name,
            _attack_config(name, profile, {"exact_qp": True}, attack_examples=profile.attack_examples),
            lambda: asdict(exact_linear_attack(linear.weight, linear.bias, images.images,
                                               random_targets(images.labels, seed=0), images.labels))))
        ok = paper_objective.success & sharpened.success & exact.success
        optimum = exact.distortion[ok].mean()
        rows[name] = {"exact": optimum.item(),
                      "ours, paper's objective": paper_objective.distortion[ok].mean().item(),
                      "paper's objective / exact": (paper_objective.distortion[ok].mean() / optimum).item(),
                      "ours, sharpened": sharpened.distortion[ok].mean().item(),
                      "sharpened / exact": (sharpened.distortion[ok].mean() / optimum).item(),
                      "success, all three (%)": 100 * ok.double().mean().item()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("network")


def peer_table(network: str = "N100-100-10", profile: Profile | str | None = None) -> pd.DataFrame:
    """Ours, the per-example scipy reference and foolbox's FMN, DDN and C&W on the same images.

    Every attack is timed in this call, on the first ``profile.peer_examples`` attacked training
    images with the same random targets (the slow scipy reference on the first
    ``profile.scipy_examples`` of them). The table is cached with the timings of the run that made it.

    Returns:
        One row per attack: examples, success (%), mean distortion over its successes, ours'
        mean distortion on the same examples, and seconds per 1000 examples.
    """
    profile = get_profile(profile)
    model = train_network(network, profile).model
    images = attacked_images("train", profile).subset(slice(0, profile.peer_examples))
    targets = random_targets(images.labels, seed=0)
    config = _attack_config(network, profile, ATTACK_SETTINGS, examples=profile.peer_examples,
                            scipy_examples=profile.scipy_examples, threads=torch.get_num_threads(),
                            device=str(device()))

    def compute() -> dict:
        return compare_attacks(model, images.images, targets, labels=images.labels,
                               scipy_examples=profile.scipy_examples, settings=ATTACK_SETTINGS)

    rows = cache.cached("peers", network, config, compute)
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("attack")


def imagenet_adversarial(profile: Profile | str | None = None,
                         target_seed: int = 0) -> tuple[ImageSet, AttackResult]:
    """Figure 5's analogue: D(x, l) on EfficientNet-Lite0 for the shipped ImageNet images, random
    wrong targets among the 1000 classes, cached.

    Returns:
        The attacked :class:`intriguing.imagenet.ImageSet` (the first ``profile.imagenet_examples``
        samples) and the :class:`AttackResult`.
    """
    profile = get_profile(profile)
    samples = imagenet_samples()
    k = profile.imagenet_examples
    images = ImageSet(samples.images[:k], samples.labels[:k], samples.names[:k])
    targets = random_targets(images.labels, seed=target_seed, n_classes=1000)
    settings = {**ATTACK_SETTINGS, **profile.imagenet_attack}
    config = {"network": "efficientnet-lite0", "weights": EFFICIENTNET_LITE0_SHA256, "attack": settings,
              "images": list(images.names), "target_seed": target_seed}

    def compute() -> dict:
        model = efficientnet_lite0()
        return asdict(min_distortion_attack(model, images.images, targets, labels=images.labels,
                                            batch_size=len(images), **settings))

    return images, AttackResult(**cache.cached("attacks-imagenet", "efficientnet-lite0", config, compute))


UNIT_NETWORKS = ["Conv", "N100-100-10", "AE400-10"]
UNIT_TOP_K = 10


def unit_coherence_table(profile: Profile | str | None = None, networks: list[str] | None = None,
                         k: int = UNIT_TOP_K, seed: int = 0) -> pd.DataFrame:
    """§3 measured on the MNIST test set: units against random directions of each network's last
    hidden layer, trained and, as a control, untrained (its initial weights, seeded).

    The label-free score is the mean pairwise cosine similarity of the top-k images' pixels.

    Returns:
        One row per (network, ``trained``/``untrained``) and score: the mean score of units and of
        random directions, the Mann-Whitney p-value and P(unit > random); and, on the untrained
        rows, ``p, trained vs untrained random``: whether the score tells the trained network's
        random directions from the untrained one's.
    """
    profile = get_profile(profile)
    test = load_mnist("test")
    pixels = test.images.flatten(1)
    frames = {}
    for name in networks or UNIT_NETWORKS:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            untrained = build_model(name)
        results = {state: units.unit_vs_random(units.activations(model, test.images), test.labels, pixels, k, seed)
                   for state, model in [("trained", train_network(name, profile).model), ("untrained", untrained)]}
        control = units.compare_scores(results["trained"].random, results["untrained"].random)
        frames[(name, "trained")] = results["trained"].summary
        frames[(name, "untrained")] = results["untrained"].summary.assign(
            **{"p, trained vs untrained random": control["p-value"]})
    return pd.concat(frames, names=["network", "weights"])
