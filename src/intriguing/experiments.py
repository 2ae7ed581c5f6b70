"""Our measurements laid out as the paper's tables, ready for :func:`intriguing.paper.compare_with_paper`."""

from __future__ import annotations

import pandas as pd

from . import paper
from .data import load_mnist
from .evaluate import error_table
from .profiles import Profile, get_profile
from .train import DECAY_MODES, DEFAULT_DECAY, TrainedNetwork, train_network, training_split

__all__ = ["decay_mode_table", "table1_errors", "table3_errors", "training_summary"]

TABLE1_NETWORKS = list(paper.TABLE1.index)
TABLE3_NETWORKS = list(paper.TABLE3.index)


def _profile(profile: Profile | str | None) -> Profile:
    return profile if isinstance(profile, Profile) else get_profile(profile)


def table1_errors(profile: Profile | str | None = None, decay_mode: str = DEFAULT_DECAY,
                  networks: list[str] | None = None) -> pd.DataFrame:
    """Table 1's error columns (%): each network on the images it was trained on and on the test set."""
    profile = _profile(profile)
    networks = networks or TABLE1_NETWORKS
    trained = {name: train_network(name, profile, decay_mode).model for name in networks}
    train_err = error_table(trained, {"Training error": training_split("train", profile)})
    test_err = error_table(trained, {"Test error": load_mnist("test")})
    return pd.concat([train_err, test_err], axis=1)


def table3_errors(profile: Profile | str | None = None) -> pd.DataFrame:
    """Table 3's error columns (%): M1, M1' and M2 on P1, P2 (as the profile cuts them) and the test set."""
    profile = _profile(profile)
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
    profile = _profile(profile)
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
