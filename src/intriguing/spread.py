"""Replicate spread: a table measured on several replicates, summarised cell by cell, and the
paper's value placed inside or outside it.

A *samples* frame holds one row per (table row, replicate): its index has a level named
``"replicate"`` and its columns are a table's numeric columns. A network run once has one
replicate; its spread is unknown (sd NaN), never zero.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["REPLICATE", "STATS", "beside_paper", "replicate_means", "replicate_sd", "summarise"]

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
