"""The networks chapter (§2; the error columns of Tables 1 and 3): data, registry, weight decay, errors, cost."""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from .. import paper, plots, spread
from ..artifacts import attacked_images, cached, replicates, table3_errors, trained_network, training_split
from ..attacks import AttackResult, min_distortion_attack
from ..data import N_CLASSES, load_mnist
from ..evaluate import error_table
from ..models import NETWORKS, SOFTMAX_NETWORKS, AutoencoderClassifier, build_model, get_spec
from ..paper import Tolerance
from ..profiles import Profile, get_profile
from ..spread import beside_paper, replicate_means
from ..train import CHECKPOINT_EVERY, CONVERGENCE_WINDOW, DECAY_MODES, DEFAULT_DECAY, window_fall

__all__ = ["AUTOENCODER", "CAP_SES", "DEFAULT_DECAY", "FILTER_IMAGES", "FULLY_CONNECTED", "SOFTMAX",
           "autoencoder_filters", "beside_paper",
           "cap_comparison", "check_cap_comparison", "check_conv_beats_fully_connected", "check_decay_default",
           "compare_table1", "compare_table3", "conv_test_error", "data_counts", "decay_mode_table", "digits_figure",
           "filter_similarity", "loss_curves", "registry", "replicate_means", "table1_errors", "table1_samples",
           "table3_samples", "training_summary"]

TABLE1_NETWORKS = list(paper.TABLE1.index)
SOFTMAX = list(SOFTMAX_NETWORKS)
FULLY_CONNECTED = [name for name in TABLE1_NETWORKS if NETWORKS[name].family == "mlp"]


def data_counts() -> pd.DataFrame:
    """MNIST's two splits: images, and images per digit 0-9."""
    rows = {}
    for split in ("train", "test"):
        data = load_mnist(split)
        rows[split] = {"images": len(data), **{str(d): int(c) for d, c in
                                                enumerate(torch.bincount(data.labels, minlength=N_CLASSES))}}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("split")


def digits_figure(count: int = 20) -> Figure:
    """The first ``count`` test images with their labels."""
    test = load_mnist("test")
    return plots.image_grid(test.images[:count], [str(int(label)) for label in test.labels[:count]])


def registry() -> pd.DataFrame:
    """Every network the book trains: description, training set, λ per weight layer, how it is trained."""
    how = {"softmax": "full-batch L-BFGS", "mlp": "full-batch L-BFGS",
           "autoencoder": "full-batch L-BFGS, autoencoder then softmax", "conv": "Adam, minibatches of 128"}
    return pd.DataFrame([{"network": s.name, "description": s.description, "trained on": s.train_set,
                          "λ per weight layer": ", ".join(f"{lam:g}" for lam in s.weight_decay),
                          "optimiser": how[s.family]} for s in NETWORKS.values()]).set_index("network")


def table1_errors(profile: Profile | str | None = None, decay_mode: str = DEFAULT_DECAY,
                  networks: list[str] | None = None, replicate: int = 0) -> pd.DataFrame:
    """Table 1's error columns (%): each network's replicate ``replicate`` on the images it was trained
    on and on the test set."""
    profile = get_profile(profile)
    models = {name: trained_network(name, profile, decay_mode, replicate).model for name in networks or TABLE1_NETWORKS}
    return pd.concat([error_table(models, {"Training error": training_split("train", profile)}),
                      error_table(models, {"Test error": load_mnist("test")})], axis=1)


def table1_samples(profile: Profile | str | None = None) -> pd.DataFrame:
    """Table 1's error columns (%) for every replicate the profile trains of each network.

    Returns:
        One row per (network, replicate): ``Training error`` and ``Test error``.
    """
    profile = get_profile(profile)
    frames = {r: table1_errors(profile, networks=[name for name in TABLE1_NETWORKS if r in replicates(name, profile)],
                               replicate=r)
              for r in range(max(len(replicates(name, profile)) for name in TABLE1_NETWORKS))}
    samples = pd.concat(frames, names=[spread.REPLICATE]).swaplevel().sort_index(level=1, sort_remaining=False)
    return samples.reindex(TABLE1_NETWORKS, level="network")


def table3_samples(profile: Profile | str | None = None) -> pd.DataFrame:
    """Table 3's error columns (%) for every replicate of M1, M1' and M2 (each replicate its own P1/P2 split).

    Returns:
        One row per (network, replicate): ``Error on P1``, ``Error on P2`` and ``Error on Test``.
    """
    profile = get_profile(profile)
    frames = {r: table3_errors(profile, r) for r in replicates("M1", profile)}
    samples = pd.concat(frames, names=[spread.REPLICATE]).swaplevel()
    return samples.reindex(list(paper.TABLE3.index), level="network")


def compare_table1(samples: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Our Table 1 errors (the replicates' means) beside the paper's; raises outside
    max(``profile.error_tolerance_pp``, 3 sd of the replicates)."""
    return paper.compare_with_paper(spread.replicate_means(samples), "Table 1", Tolerance(profile.error_tolerance_pp),
                                    profile=profile.name, spread=spread.replicate_sd(samples))


def compare_table3(samples: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Our Table 3 errors (the replicates' means) beside the paper's; raises outside
    max(``profile.error_tolerance_pp``, 3 sd of the replicates)."""
    return paper.compare_with_paper(spread.replicate_means(samples), "Table 3", Tolerance(profile.error_tolerance_pp),
                                    profile=profile.name, spread=spread.replicate_sd(samples))


def decay_mode_table(profile: Profile | str | None = None) -> pd.DataFrame:
    """The softmax models' errors under each weight-decay reading, with their mean distance to the paper.

    Returns:
        One row per (decay mode, network) with ``Training error`` and ``Test error`` (%), and
        ``mean |diff|`` (percentage points), the mode's mean absolute difference from Table 1
        over its six softmax numbers.
    """
    profile = get_profile(profile)
    frames = {}
    for mode in DECAY_MODES:
        ours = table1_errors(profile, mode, SOFTMAX)
        gap = (ours - paper.TABLE1.loc[SOFTMAX, ours.columns]).abs().to_numpy().mean()
        frames[mode] = ours.assign(**{"mean |diff|": gap})
    return pd.concat(frames, names=["decay mode", "network"])


def check_decay_default(decay: pd.DataFrame, profile: Profile) -> None:
    """At the paper's scale, the library's default decay reading must be the closest to Table 1."""
    gaps = decay["mean |diff|"].groupby(level="decay mode").first()
    if profile.paper_scale:
        assert gaps.idxmin() == DEFAULT_DECAY, f"the default decay reading {DEFAULT_DECAY!r} no longer reproduces best"


def conv_test_error(profile: Profile | str | None = None) -> float:
    """The Conv network's test error (%)."""
    model = trained_network("Conv", profile).model
    return float(error_table({"Conv": model}, {"Test error": load_mnist("test")}).iloc[0, 0])


def check_conv_beats_fully_connected(conv_error: float, table1: pd.DataFrame, profile: Profile) -> None:
    """At the paper's scale, Conv must beat every fully connected network of Table 1 on the test set."""
    if profile.paper_scale:
        best = table1.loc[FULLY_CONNECTED, "Test error"].min()
        assert conv_error < best, (conv_error, best)


def training_summary(profile: Profile | str | None = None) -> pd.DataFrame:
    """One row per network and training stage: iterations, whether L-BFGS converged, seconds, final
    loss, and (L-BFGS) the relative fall of the objective over the last recorded interval, in %."""
    rows = []
    for name in NETWORKS:
        for stage, log in trained_network(name, profile).stages.items():
            fall = 100 * window_fall(log.losses) if stage != "adam" else float("nan")
            fall = fall if fall != float("inf") else float("nan")  # a stage shorter than the window
            rows.append({"network": name, "stage": stage, "iterations": log.iterations, "stopped by": log.stop,
                         "seconds": round(log.seconds, 1), "final loss": log.losses[-1],
                         f"fall over the last {CONVERGENCE_WINDOW} its (%)": fall})
    return pd.DataFrame(rows).set_index(["network", "stage"])


def cap_comparison(profile: Profile | str | None = None) -> pd.DataFrame:
    """Each network of ``profile.cap_comparison`` stopped by the window test and trained to the cap.

    Returns:
        One row per (network, stop): L-BFGS iterations (all stages), seconds, training and test
        error (%), and the mean minimum distortion on the first ``profile.peer_examples`` attacked
        test images (random targets, the profile's search) with its success (%).
    """
    profile = get_profile(profile)
    test = load_mnist("test")
    attacked = attacked_images("test", profile).subset(slice(0, profile.peer_examples))
    rows = []
    for name in profile.cap_comparison:
        train = training_split(get_spec(name).train_set, profile)
        for stop, to_cap in (("window test", False), ("cap", True)):
            net = trained_network(name, profile, to_cap=to_cap)
            errors = error_table({name: net.model}, {"training error": train, "test error": test}).iloc[0]
            result = AttackResult(**cached(
                "attacks", name, profile, lambda: asdict(min_distortion_attack(
                    net.model, attacked.images, attacked.targets, labels=attacked.labels, settings=profile.search,
                    progress=False)),
                name=f"{name}-cap-comparison", settings=profile.search, to_cap=to_cap, split="test",
                examples=len(attacked), target_seed=attacked.target_seed))
            rows.append({"network": name, "stopped by": stop,
                         "iterations": sum(log.iterations for log in net.stages.values()),
                         "seconds": round(net.seconds, 1), **errors.to_dict(),
                         "distortion": result.distortion[result.success].mean().item(),
                         "success (%)": 100 * result.success.double().mean().item()})
    return pd.DataFrame(rows).set_index(["network", "stopped by"])


def check_cap_comparison(table: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """What training on to the cap changes, per network, against the test set's sampling error.

    Returns:
        Per network: the test-error change (pp, cap minus window test), the binomial standard
        error of a test error on 10,000 images (pp), the distortion's relative change (%), and the
        iterations saved (%). At the paper's scale it raises unless every test-error change is
        within :data:`CAP_SES` standard errors and every distortion within 5 %.
    """
    n_test = len(load_mnist("test"))
    rows = {}
    for name, both in table.groupby(level="network", sort=False):
        window, cap = both.xs("window test", level="stopped by").iloc[0], both.xs("cap", level="stopped by").iloc[0]
        p = window["test error"] / 100
        rows[name] = {"test error change (pp)": cap["test error"] - window["test error"],
                      "test-set standard error (pp)": 100 * (p * (1 - p) / n_test) ** 0.5,
                      "distortion change (%)": 100 * (cap["distortion"] / window["distortion"] - 1),
                      "iterations saved (%)": 100 * (1 - window["iterations"] / cap["iterations"])}
    changes = pd.DataFrame.from_dict(rows, orient="index").rename_axis("network")
    if profile.paper_scale:
        error_ok = changes["test error change (pp)"].abs() <= CAP_SES * changes["test-set standard error (pp)"]
        distortion_ok = changes["distortion change (%)"].abs() <= 5
        assert (error_ok & distortion_ok).all(), changes
    return changes


CAP_SES = 3.0
"""How many test-set standard errors a network's test error may move between the window test and the cap.
Two did not leave room between machines: on 2026-11-30, softmax1 and N100-100-10 moved by at most 0.22 pp
against a 2-SE bound of 0.26 pp; with two networks compared, a 2-SE bound also fails by chance in about
one build of ten where nothing changed, a 3-SE bound in about one of two hundred."""


AUTOENCODER = "AE400-10"
FILTER_IMAGES = 10_000
"""The training images :func:`filter_similarity` compares each filter with."""


def _encoder_weight(model: nn.Module) -> torch.Tensor:
    assert isinstance(model, AutoencoderClassifier)
    return model.encoder.weight.detach()


def autoencoder_filters(profile: Profile | str | None = None, count: int = 100) -> Figure:
    """The first ``count`` of AE400-10's first-layer filters (its encoder's weight rows), each scaled
    to its own range: dark is its largest weight, white its smallest."""
    weight = _encoder_weight(trained_network(AUTOENCODER, profile).model)[:count]
    low, high = weight.min(1, keepdim=True).values, weight.max(1, keepdim=True).values
    scaled = (weight - low) / (high - low).clamp_min(1e-12)
    return plots.image_grid(scaled.view(-1, 1, 28, 28), ncols=20, size=0.45)


def filter_similarity(profile: Profile | str | None = None) -> pd.DataFrame:
    """How much AE400-10's first-layer filters look like digits, trained and at their initial weights.

    Each filter is compared with the first :data:`FILTER_IMAGES` training images by cosine similarity
    of the raw vectors; its score is the largest.

    Returns:
        One row per state (``trained``, ``initial``): the filters' count, and their scores' mean
        and quartiles.
    """
    images = training_split("train", get_profile(profile)).images[:FILTER_IMAGES].flatten(1)
    images = images / images.norm(dim=1, keepdim=True)
    states = {"trained": _encoder_weight(trained_network(AUTOENCODER, profile).model),
              "initial": _encoder_weight(build_model(AUTOENCODER))}
    rows = {}
    for state, weight in states.items():
        best = (weight / weight.norm(dim=1, keepdim=True) @ images.T).max(1).values
        q1, median, q3 = best.quantile(torch.tensor([0.25, 0.5, 0.75])).tolist()
        rows[state] = {"filters": weight.shape[0], "mean": best.mean().item(), "25 %": q1, "median": median,
                       "75 %": q3}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("best cosine with a training image")


def loss_curves(profile: Profile | str | None = None) -> Figure:
    """Every L-BFGS stage's objective against its iterations."""
    logs = {f"{name} ({stage})": log for name in NETWORKS
            for stage, log in trained_network(name, profile).stages.items() if stage != "adam"}
    return plots.loss_curves(logs, CHECKPOINT_EVERY)
