"""Replicate spread: a table measured on several replicates, summarised cell by cell, and the
paper's value placed inside or outside it.

A *samples* frame holds one row per (table row, replicate): its index has a level named
``"replicate"`` and its columns are a table's numeric columns. A network run once has one
replicate; its spread is unknown (sd NaN), never zero.

:func:`paired_ordering` decides whether one quantity lies below another over replicates that pair
up (the same seed for both), with a paired t-test.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["ORDERING_VERDICTS", "REPLICATE", "STATS", "beside_paper", "paired_ordering", "replicate_means", "replicate_sd",
           "summarise"]

REPLICATE = "replicate"
STATS = ("n", "mean", "sd", "min", "max")


def _rows(samples: pd.DataFrame) -> str:
    """The name of the index level that names the table's rows."""
    names = list(samples.index.names)
    if len(names) != 2 or REPLICATE not in names:
        raise KeyError(f"a samples frame is indexed by (table row, {REPLICATE!r}), got {names}")
    if samples.isna().any().any():
        raise ValueError(f"a samples frame must hold no NaN:\n{samples[samples.isna().any(axis=1)]}")
    return next(name for name in names if name != REPLICATE)


def summarise(samples: pd.DataFrame) -> pd.DataFrame:
    """Each cell's n, mean, sd (n − 1 in the denominator; NaN for one replicate), min and max.

    Returns:
        One row per table row (in first-seen order); columns (column, stat) for stat in :data:`STATS`.
    """
    rows = _rows(samples)
    grouped = samples.groupby(level=rows, sort=False)
    stats = {"n": grouped.count(), "mean": grouped.mean(), "sd": grouped.std(ddof=1), "min": grouped.min(),
             "max": grouped.max()}
    return pd.concat(stats, axis=1).swaplevel(0, 1, axis=1).reindex(
        columns=pd.MultiIndex.from_product([samples.columns, STATS]))


def replicate_means(samples: pd.DataFrame) -> pd.DataFrame:
    """Each cell's mean over its replicates, in the table's layout."""
    return summarise(samples).xs("mean", axis=1, level=1)


def replicate_sd(samples: pd.DataFrame) -> pd.DataFrame:
    """Each cell's sd over its replicates, in the table's layout (NaN for one replicate)."""
    return summarise(samples).xs("sd", axis=1, level=1)


def beside_paper(samples: pd.DataFrame, paper: pd.DataFrame, only_replicated: bool = False) -> pd.DataFrame:
    """Every cell of ``samples`` as mean ± sd (n) and min–max beside the paper's value.

    Args:
        samples: one row per (table row, replicate), columns as in ``paper``.
        paper: the paper's table, indexed by the same rows.
        only_replicated: keep only the cells measured on at least two replicates.

    Returns:
        One row per (table row, column): ``n``, ``mean``, ``sd``, ``min``, ``max``, ``paper``,
        ``paper in range`` (min ≤ paper ≤ max; missing for a single replicate) and ``gap (sd)``,
        (mean − paper) / sd (NaN where the sd is unknown or zero).
    """
    table = summarise(samples).stack(level=0, future_stack=True)
    table.index = table.index.set_names("column", level=-1)
    table["paper"] = [float(paper.loc[row, column]) for row, column in table.index]
    inside = (table["min"] <= table["paper"]) & (table["paper"] <= table["max"])
    table["paper in range"] = inside.astype("boolean").where(table["n"] >= 2, pd.NA)
    sd = table["sd"].where(table["sd"] > 0)
    table["gap (sd)"] = (table["mean"] - table["paper"]) / sd
    table["n"] = table["n"].astype(int)
    if only_replicated:
        table = table[table["n"] >= 2]
    return table.replace([np.inf, -np.inf], np.nan)


ORDERING_VERDICTS = ("holds", "reversed", "not resolved")
"""What :func:`paired_ordering` can find."""


def paired_ordering(lower: pd.Series, higher: pd.Series, level: float = 0.05,
                    unit: str = "seeds") -> dict[str, float | int | str]:
    """Whether ``lower`` lies below ``higher``, paired by index (one seed of each, or one image), by a
    two-sided paired t-test of their differences at ``level``.

    Args:
        lower, higher: one value per seed (index); only seeds present in both count.
        level: the test's level.
        unit: what the index counts, for the ``test`` text ("seeds", "images").

    Returns:
        ``seeds``, ``difference`` (mean of lower − higher), ``sd of differences``, ``t``, ``p-value``,
        ``test`` (the test in words: ``"paired t = -4.1, p = 0.012, 5 seeds"``, or ``"one seed: no test"``)
        and ``verdict``: ``"holds"`` (difference < 0 and p < level), ``"reversed"`` (difference > 0 and
        p < level) or ``"not resolved"`` (otherwise, and with fewer than two seeds). Differences that do
        not vary give t = ±inf and p = 0 (or t = 0 and p = 1 when they are all 0).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    both = pd.concat({"lower": lower, "higher": higher}, axis=1).dropna()
    d = (both["lower"] - both["higher"]).to_numpy(dtype=float)
    n = len(d)
    if n < 2:
        mean = float(d[0]) if n else math.nan
        return {"seeds": n, "difference": mean, "sd of differences": math.nan, "t": math.nan, "p-value": math.nan,
                "test": f"{'one' if n else 'no'} {unit.removesuffix('s')}: no test", "verdict": "not resolved"}
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0:
        t, p = (math.copysign(math.inf, mean), 0.0) if mean else (0.0, 1.0)
    else:
        t = mean / (sd / math.sqrt(n))
        p = float(2 * stats.t.sf(abs(t), df=n - 1))
    verdict = "not resolved" if p >= level else ("holds" if mean < 0 else "reversed")
    return {"seeds": n, "difference": mean, "sd of differences": sd, "t": t, "p-value": p,
            "test": f"paired t = {t:.1f}, p = {p:.2g}, {n} {unit}", "verdict": verdict}
