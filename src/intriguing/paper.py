"""The paper's numbers as data, and checks that put ours beside them.

Tables 1-5 of Szegedy et al. (2013) are transcribed from the text of arXiv:1312.6199;
errors and rates are in percent, distortions in RMS pixel units on [0, 1]. A chapter builds its
own table in the same layout and calls :func:`compare_with_paper`, which returns the two side by
side and raises :class:`PaperMismatch` when a number drifts outside the stated tolerance.
The deviations we know of are data too (:data:`DEVIATIONS`): which cell, in which profile, why,
and where the book shows the measurement; :func:`compare_with_paper` reads them.

The paper's claims are data as well (:data:`CLAIMS`): each paraphrased, with the chapter and the
measurement that test it and the rule that turns the measurement into a verdict. A chapter decides
its claims with :func:`decide`, which records the verdict for the build's ``results.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

__all__ = ["ADVERSARIAL_TRAINING", "CHAPTER_VAR", "CLAIMS", "DEVIATIONS", "FIGURES", "RESULTS_VAR", "SPREAD_SDS",
           "TABLES", "VERDICTS", "Claim", "Deviation", "PaperMismatch", "TABLE1", "TABLE2", "TABLE3", "TABLE4", "TABLE5",
           "Tolerance", "claim", "claims_table", "compare_with_paper", "decide", "deviation_table", "expected_deviations",
           "ordering_case", "verdict_of"]

_MNIST_MODELS = ["softmax1", "softmax2", "softmax3", "N100-100-10", "N200-200-10", "AE400-10"]

TABLE1 = pd.DataFrame(
    {
        "Description": ["Softmax with λ=1e-4", "Softmax with λ=1e-2", "Softmax with λ=1",
                        "Sigmoid network λ=1e-5, 1e-5, 1e-6", "Sigmoid network λ=1e-5, 1e-5, 1e-6",
                        "Autoencoder with softmax λ=1e-6"],
        "Training error": [6.7, 10.0, 21.2, 0.0, 0.0, 0.57],
        "Test error": [7.4, 9.4, 20.0, 1.64, 1.54, 1.9],
        "Av. min. distortion": [0.062, 0.1, 0.14, 0.058, 0.065, 0.086],
    },
    index=pd.Index(_MNIST_MODELS, name="network"),
)
"""Table 1: the six MNIST networks, their errors (%) and average minimum distortion."""

TABLE2 = pd.DataFrame(
    [
        [100, 11.7, 22.7, 2, 3.9, 2.7, 0.062],
        [87.1, 100, 35.2, 35.9, 27.3, 9.8, 0.1],
        [71.9, 76.2, 100, 48.1, 47, 34.4, 0.14],
        [28.9, 13.7, 21.1, 100, 6.6, 2, 0.058],
        [38.2, 14, 23.8, 20.3, 100, 2.7, 0.065],
        [23.4, 16, 24.8, 9.4, 6.6, 100, 0.086],
        [5.0, 10.1, 18.3, 0, 0, 0.8, 0.1],
        [15.6, 11.3, 22.7, 5, 4.3, 3.1, 0.3],
    ],
    index=pd.Index(_MNIST_MODELS + ["Gaussian noise, stddev=0.1", "Gaussian noise, stddev=0.3"], name="set"),
    columns=_MNIST_MODELS + ["Av. distortion"],
)
"""Table 2: error (%) of each network (columns) on each distorted training set (rows)."""

TABLE3 = pd.DataFrame(
    {
        "Description": ["100-100-10 trained on P1", "123-456-10 trained on P1", "100-100-10 trained on P2"],
        "Error on P1": [0.0, 0.0, 2.3],
        "Error on P2": [2.4, 2.5, 0.0],
        "Error on Test": [2.0, 2.1, 2.1],
        "Min Av. Distortion": [0.062, 0.059, 0.058],
    },
    index=pd.Index(["M1", "M1'", "M2"], name="network"),
)
"""Table 3: the cross-training-set networks, their errors (%) and minimum average distortion."""

TABLE4 = pd.DataFrame(
    [
        [100, 26.2, 5.9, 0.062],
        [6.25, 100, 5.1, 0.059],
        [8.2, 8.2, 100, 0.058],
        [2.2, 2.6, 2.4, 0.06],
        [100, 98, 43, 0.1],
        [96, 100, 22, 0.1],
        [27, 50, 100, 0.1],
        [2.6, 2.8, 2.7, 0.1],
    ],
    index=pd.Index([
        "Distorted for M1", "Distorted for M1'", "Distorted for M2", "Gaussian noise, stddev=0.06",
        "Distorted for M1, amplified", "Distorted for M1', amplified", "Distorted for M2, amplified",
        "Gaussian noise, stddev=0.1",
    ], name="set"),
    columns=["M1", "M1'", "M2", "Av. distortion"],
)
"""Table 4: cross-training-set error (%) of each network (columns) on each test-set variant (rows), with
the average distortion the paper states in each row's name ("amplified" rows are amplified to 0.1)."""

TABLE5 = pd.DataFrame(
    {
        "Size": ["3×11×11×96", "96×5×5×256", "256×3×3×384", "384×3×3×384", "384×3×3×256",
                 "9216×4096", "4096×4096", "4096×1000"],
        "Lower bound": [0.1, 0.06, 0.01, 5e-5, 0.03, 0.09, 1e-4, 0.25],
        "Upper bound": [20, 10, 7, 7.3, 11, 3.12, 4, 4],
    },
    index=pd.Index(["Conv. 1", "Conv. 2", "Conv. 3", "Conv. 4", "Conv. 5", "FC. 1", "FC. 2", "FC. 3"],
                   name="layer"),
)
"""Table 5: frame bounds of AlexNet's layers, with lower and upper bounds as in arXiv:1312.6199 (another
published version lists Conv. 1's upper bound as 2.75, with a stride column)."""

ADVERSARIAL_TRAINING = pd.DataFrame(
    {"Test error": [1.6, 1.3, 1.2]},
    index=pd.Index(["weight decay", "dropout", "pools at every layer"], name="variant"),
)
"""§4.2's adversarial-training numbers (%), for a 100-100-10 sigmoid network: weight decay alone 1.6,
dropout "about" 1.3, and a pool of adversarial examples at every layer "below" 1.2 (an upper bound)."""

FIGURES = {
    "figure5_average_distortion": 0.006508,  # AlexNet, 64 examples
    "figure7a_softmax_stddev": 0.06,
    "figure7b_n200_stddev": 0.063,
    "figure7c_noise_stddev": 1.0,
    "figure7c_noise_accuracy_percent": 51.0,
}
"""Numbers stated in the figures' captions."""


TABLES = {"Table 1": TABLE1, "Table 2": TABLE2, "Table 3": TABLE3, "Table 4": TABLE4, "Table 5": TABLE5,
          "§4.2 adversarial training": ADVERSARIAL_TRAINING}
"""The paper's tables by name, as :func:`compare_with_paper` takes them."""


@dataclass(frozen=True)
class Tolerance:
    """How far a number may sit from the paper's: ``value`` in the table's units, or as a fraction of
    |paper| when ``relative``."""

    value: float
    relative: bool = False

    def __post_init__(self) -> None:
        if not self.value >= 0:
            raise ValueError(f"a tolerance must be non-negative, got {self.value}")

    def describe(self) -> str:
        return f"{self.value:.0%} relative" if self.relative else f"±{self.value:g}"


@dataclass(frozen=True)
class Deviation:
    """A cell of one of the paper's tables that our run is known to miss by more than its tolerance.

    Attributes:
        table: ``"Table 1"`` … ``"Table 5"``.
        row, column: the cell.
        profile: the profile in which it is expected.
        why: what our measurements say of the cause, or "Unexplained" and what was measured.
        measured_in: where the book shows that measurement.
    """

    table: str
    row: str
    column: str
    profile: str
    why: str
    measured_in: str


_SOFTMAX3_DECAY = Deviation(
    "Table 1", "softmax3", "", "full",
    "softmax3's errors depend on how the weight decay's λ is read far more than any other network's: with λ = 1 "
    "the decay dominates its objective. Which reading the paper used is not recoverable; we keep the one that "
    "reproduces the other rows best.",
    "the networks chapter, 'Which weight decay?': the spread of softmax3's errors over the three readings")

DEVIATIONS: tuple[Deviation, ...] = (
    replace(_SOFTMAX3_DECAY, column="Training error"),
    replace(_SOFTMAX3_DECAY, column="Test error"),
    Deviation(
        "Table 4", "Distorted for M1'", "M1", "full",
        "Unexplained. Our transfer between M1 and M1' is about as strong in both directions, where the paper's "
        "is 26.2 % one way and 6.25 % the other; no measurement of ours accounts for the paper's asymmetry. Over "
        "three replicates (each its own P1/P2 split, initial weights and targets) this cell is 22.3 ± 1.9 % "
        "(range 20.2-24.0), the other direction 22.0 ± 3.8 % (the cold full build of 2026-12-04; 23.6 ± 0.4 "
        "and 20.6 ± 2.5 % in an earlier build on another machine): the gap to 6.25 % is 8 of our sds, not "
        "noise. Causes tried: the sets' size. Ours are 0.058 RMS where the paper's Table 3 gives M1' 0.059; "
        "rescaled to the paper's, the cell reads 25.8 %, further from 6.25 % (the cells are sensitive to size: "
        "a minimum-distortion example sits at its network's boundary). The training's length: with M1, M1' and "
        "M2 trained to the 1,200-iteration cap instead of stopped by the window test (350-375 iterations), the "
        "cell reads 23.5 ± 2.7 % over the same replicates (paired change +1.2 pp, t = 1.3, p = 0.31; "
        "benchmarks/cross_training_cap.py, 2026-12-05).",
        "the cross-training-set chapter: both directions of transfer between M1 and M1', and the sets at the "
        "paper's distortion"),
    Deviation(
        "Table 4", "Distorted for M1', amplified", "M2", "full",
        "Unexplained. Our four amplified cross-training-set cells lie close together, where the paper's spread "
        "from 22 % to 50 %; this cell is the paper's lowest. Over three replicates it is 39.0 ± 3.5 % "
        "(range 36.2-42.9), 4.9 of our sds above the paper's 22 %. Cause tried: the training's length. With M1, "
        "M1' and M2 trained to the 1,200-iteration cap instead of stopped by the window test, it reads "
        "36.8 ± 2.8 % over the same replicates (paired change -2.2 pp, t = -1.8, p = 0.22; "
        "benchmarks/cross_training_cap.py, 2026-12-05): not the cause.",
        "the cross-training-set chapter: the four amplified cross-training-set cells, ours and the paper's"),
    Deviation(
        "Table 4", "Distorted for M2, amplified", "M1", "full",
        "Partly measured. Over three replicates (each its own P1/P2 split, initial weights and targets) this "
        "cell is 42.4 ± 0.2 % (range 42.2-42.6) against the paper's 27 %, with M1, M1' and M2 stopped by the "
        "window test (350-375 iterations). Trained to the 1,200-iteration cap instead, the same replicates "
        "give 37.9 ± 2.0 % (range 35.7-39.8; paired change -4.6 ± 2.2 pp, t = -3.5, p = 0.07; "
        "benchmarks/cross_training_cap.py, 2026-12-05): the longer training moves the cell towards the "
        "paper's by about a third of the gap, not resolved at the 5 % level over three replicates, and leaves "
        "it 11 pp above 27 %. The search is not the cause: the earlier search's settings give 43.3 % on the "
        "same networks. The rest of the gap is unexplained.",
        "the cross-training-set chapter: the four amplified cross-training-set cells, ours and the paper's"),
    Deviation(
        "§4.2 adversarial training", "weight decay", "Test error", "full",
        "Partly measured: the minibatch networks trail the full-batch one because it stops early, not because of "
        "their minibatches. Over five seeds (the cold full build of 2026-12-04) our weight-decay network gives "
        "1.99 ± 0.07 % where the paper reports 1.6 %, with the recipe chosen on held-out images among five (SGD "
        "with Nesterov momentum at lr 0.5, annealed along a cosine over 24 epochs); the chapter's first recipe "
        "(Adam at 3e-3, halved twice) gives 2.08 ± 0.14 % over the same seeds. The same 784-100-100-10 network "
        "with the same weight decay trained full-batch with L-BFGS gives 1.75 ± 0.04 % over three replicates when "
        "the window test stops it (375-400 iterations), as Table 1's networks are; trained on to the "
        "1,200-iteration cap (the first replicate) it gives 1.98 %, the minibatch networks' level (on the same "
        "test images 63 errors are the capped network's alone, 41 the stopped one's: McNemar z = 2.2). In "
        "one-seed trials 48 epochs instead of 24 moved the minibatch test error by 0.02 pp. The rest of the gap "
        "to 1.6 % is unexplained; the paper does not say how long it trained.",
        "the adversarial-training chapter: the recipes tried, the variants seed by seed, the full-batch network "
        "stopped by the window test and trained to the cap; the networks chapter: Table 1's N100-100-10 and "
        "its run to the cap"),
    Deviation(
        "§4.2 adversarial training", "dropout", "Test error", "full",
        "Partly measured: trained longer, our dropout network moves towards the paper's. With 0.2 dropout on "
        "the hidden layers (chosen on held-out images among three settings) and the recipe's 24 epochs it gave "
        "1.96 ± 0.08 % over five seeds (the cold full build of 2026-12-04), where the paper reports about "
        "1.3 %, and did not resolve its ordering against weight decay alone (p = 0.63). The held-out images now "
        "also try the same rates trained four times as long and choose them (1.85 % held-out error against "
        "2.02 %): 96 epochs give 1.70 ± 0.13 % over the same seeds (the chapter's full run of 2026-12-05), "
        "below weight decay's 1.99 % (paired t = -3.5, p = 0.025). Two more of the usual ways of training "
        "dropout, tried at 96 epochs (benchmarks/dropout_trials.py, 2026-12-05): 0.2 dropout on the input with "
        "0.5 on the hidden layers gave 2.40 % held-out error (2.72 % with max-norm); max-norm 4 on every unit's "
        "incoming weights gave 1.82 % held-out, within that set's standard error (0.13 pp) of 1.85 %, and "
        "1.76 ± 0.10 % over the five seeds (paired change +0.06 pp against no max-norm, p = 0.27): neither "
        "helps. The rest of the gap, 0.4 pp, is unexplained.",
        "the adversarial-training chapter: the tuning of dropout, and the variants seed by seed"),
    Deviation(
        "§4.2 adversarial training", "pools at every layer", "Test error", "full",
        "Partly measured. Under the chapter's first reading of the pool (each example as found, at its minimum "
        "distortion towards a random wrong label) pools at every layer give 2.63 ± 0.10 % test error over five "
        "seeds (the cold full build of 2026-12-05, commit 71944e3) where the paper reports below 1.2 %. The "
        "examples' size is what costs: rescaled to 0.05 RMS each (the reading the held-out images chose among "
        "seven), the same pools give 1.77 ± 0.12 %, below weight decay (1.99 %, paired p = 0.0014); against "
        "dropout (1.70 % trained 96 epochs) the paired test does not resolve the ordering (p = 0.52), and the "
        "number stays 0.6 pp above the paper's. "
        "The pools' search matters too: with the effort the held-out images chose (1 c step of 10 L-BFGS "
        "iterations, against 4 of 20 in the 2026-12-02 run), the input pool's searches succeed less often (73 % at "
        "the first refresh, 34 % at the last; a failed search leaves its clean image in the pool), and the first "
        "reading's error fell from 3.28 ± 0.14 % to 2.74 % (2026-12-04), the rescaled reading's moved from "
        "1.73 ± 0.07 % to 1.78 %. The search's line search moved them again: shrinking a failed step by "
        "interpolation instead of halving (2026-12-05) took the first reading from 2.74 % to 2.63 % and the pool "
        "at the input from 2.38 ± 0.03 % to 2.28 ± 0.04 % (3 seeds), more than their seeds' spread, and turned "
        "the orderings of the single-layer pools from not resolved to resolved (hidden layer 2 below the input, "
        "p = 0.04; hidden layer 1 above it, p = 0.0074): with 3 seeds, these verdicts depend on details of the "
        "pools' search. As found, the input pool's median example grows from 0.058 to 0.091 RMS over training, "
        "the training error is 1.5 % (weight decay alone: 0.008 %), and the book's Conv calls 91 % of the pool's "
        "final images by their true label. The rest of the gap to 1.2 % is unexplained; the paper does not state "
        "its pool's search, size, mixing or schedule.",
        "the adversarial-training chapter: the readings tried, the variants seed by seed, what the pools hold, "
        "and the paper's orderings"),
)
"""Every cell we know to lie outside its tolerance, by table and profile."""


def expected_deviations(table: str, profile: str) -> dict[tuple[str, str], Deviation]:
    """The :data:`DEVIATIONS` of ``table`` in ``profile``, keyed by (row, column)."""
    if table not in TABLES:
        raise KeyError(f"unknown table {table!r}; choose one of {sorted(TABLES)}")
    return {(d.row, d.column): d for d in DEVIATIONS if d.table == table and d.profile == profile}


def deviation_table(table: str, profile: str) -> pd.DataFrame:
    """The recorded deviations of ``table`` in ``profile``: one row per cell with why and where it is measured."""
    rows = [{"row": row, "column": col, "why": d.why, "measured in": d.measured_in}
            for (row, col), d in expected_deviations(table, profile).items()]
    return pd.DataFrame(rows, columns=["row", "column", "why", "measured in"]).set_index(["row", "column"])


SPREAD_SDS = 3.0
"""With replicates, a cell's tolerance is max(the stated tolerance, SPREAD_SDS × the replicates' sd)."""


class PaperMismatch(AssertionError):
    """Raised when a reproduced number lies outside its tolerance of the paper's."""


RESULTS_VAR = "INTRIGUING_RESULTS"
"""While this names a file, every cell :func:`compare_with_paper` compares is appended to it as a
JSON line (``python -m intriguing build`` gathers them into ``results.json``)."""
CHAPTER_VAR = "INTRIGUING_CHAPTER"
"""The chapter being executed, written into each recorded comparison."""


def _record_comparison(table: str, ours: pd.DataFrame, ref: pd.DataFrame, tolerances: pd.DataFrame,
                       outside: pd.DataFrame, expected: Mapping[tuple[str, str], Deviation]) -> None:
    path = os.environ.get(RESULTS_VAR)
    if not path:
        return
    lines = []
    for row in ours.index:
        for col in ours.columns:
            verdict = ("within tolerance" if not outside.loc[row, col] else
                       "outside, a recorded deviation" if (row, col) in expected else "outside")
            lines.append(json.dumps({"chapter": os.environ.get(CHAPTER_VAR, ""), "table": table, "row": str(row),
                                     "column": str(col), "ours": float(ours.loc[row, col]),
                                     "paper": float(ref.loc[row, col]), "tolerance": tolerances.loc[row, col],
                                     "verdict": verdict}))
    with open(path, "a", encoding="utf-8") as out:
        out.write("".join(line + "\n" for line in lines))


def compare_with_paper(
    ours: pd.DataFrame,
    table: str,
    tolerance: Tolerance | Mapping[str, Tolerance],
    *,
    profile: str,
    spread: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Put our numbers beside the paper's and fail when one is outside tolerance.

    Args:
        ours: our table; its index and columns must be in the paper's.
        table: the paper's table, by name (a key of :data:`TABLES`).
        tolerance: one :class:`Tolerance` for every column, or one per column of ``ours``.
        profile: the profile the numbers come from; its :func:`expected_deviations` are the cells
            allowed outside tolerance. Such a cell must still be outside, so that a recorded
            deviation cannot outlive what it records, unless it lies within :data:`SPREAD_SDS` sd
            of the tolerance's edge, where its replicates cannot tell inside from outside.
        spread: the replicates' sd of each cell of ``ours`` (then the replicates' mean), NaN where a
            cell has one replicate. A cell's tolerance becomes max(stated, :data:`SPREAD_SDS` × sd).

    Returns:
        A table with, for each compared column, ``ours``, ``paper`` and ``diff`` (ours − paper)
        and an ``ok`` column naming the cells outside tolerance; with ``spread``, a ``tolerance``
        column naming the cells whose tolerance came from the spread.

    Raises:
        PaperMismatch: a cell outside tolerance is not an expected deviation, or an expected
            deviation is inside.
        KeyError: ``ours`` names a row or column the paper does not have, or ``tolerance`` lacks one
            of its columns.
    """
    if table not in TABLES:
        raise KeyError(f"unknown table {table!r}; choose one of {sorted(TABLES)}")
    paper = TABLES[table]
    missing_rows = set(ours.index) - set(paper.index)
    missing_cols = set(ours.columns) - set(paper.columns)
    if missing_rows or missing_cols:
        raise KeyError(f"not in the paper's {table}: rows {sorted(missing_rows)}, columns {sorted(missing_cols)}")
    per_column = {col: tolerance for col in ours.columns} if isinstance(tolerance, Tolerance) else dict(tolerance)
    if set(ours.columns) - set(per_column):
        raise KeyError(f"no tolerance for columns {sorted(set(ours.columns) - set(per_column))}")
    expected = {cell: d for cell, d in expected_deviations(table, profile).items() if cell[1] in ours.columns}
    ref = paper.loc[ours.index, ours.columns].astype(float)
    diff = ours.astype(float) - ref
    allowed = pd.DataFrame({col: per_column[col].value * (ref[col].abs() if per_column[col].relative else 1.0)
                            for col in ours.columns}, index=ref.index).reindex(columns=ref.columns)
    stated = pd.DataFrame({col: [per_column[col].describe()] * len(ref) for col in ours.columns}, index=ref.index)
    from_spread = pd.DataFrame(False, index=ref.index, columns=ref.columns)
    widened = pd.DataFrame(0.0, index=ref.index, columns=ref.columns)
    if spread is not None:
        widened = SPREAD_SDS * spread.reindex(index=ours.index, columns=ours.columns).astype(float).fillna(0.0)
        from_spread = widened > allowed
        allowed = allowed.where(~from_spread, widened)
        stated = stated.where(~from_spread, widened.map(lambda v: f"±{v:.3g} ({SPREAD_SDS:g} sd)"))
    outside = diff.abs() > allowed + 1e-12
    at_edge = (diff.abs() - allowed).abs() <= widened  # the replicates cannot tell inside from outside
    problems = []
    for (row, col), is_out in outside.stack().items():
        if is_out and (row, col) not in expected:
            problems.append(f"{row} / {col}: ours {ours.loc[row, col]:.4g}, paper {ref.loc[row, col]:.4g}")
        if not is_out and (row, col) in expected and not at_edge.loc[row, col]:
            problems.append(f"{row} / {col} is recorded as a deviation in paper.DEVIATIONS but is within "
                            f"tolerance now")
    for cell in expected:
        if cell[0] not in ours.index:
            problems.append(f"expected deviation {cell} is not in the compared table")

    side = pd.concat({col: pd.DataFrame({"ours": ours[col].astype(float), "paper": ref[col],
                                         "diff": diff[col]}) for col in ours.columns}, axis=1)
    flags = outside.apply(lambda r: ", ".join(c for c in r.index if r[c]), axis=1)
    side[("ok", "")] = np.where(flags == "", "✓", "outside: " + flags)
    if spread is not None:
        widened_cols = from_spread.apply(lambda r: ", ".join(c for c in r.index if r[c]), axis=1)
        side[("tolerance", "")] = np.where(widened_cols == "", "stated", f"{SPREAD_SDS:g} sd: " + widened_cols)
    _record_comparison(table, ours, ref, stated, outside, expected)
    if problems:
        kinds = ", ".join(sorted({t.describe() for t in per_column.values()}))
        raise PaperMismatch(f"outside the tolerance ({kinds}) of the paper's {table}:\n  " + "\n  ".join(problems)
                            + f"\n\n{side.to_string()}")
    return side


# --- The paper's claims, each decided by a chapter -------------------------------------------------------

VERDICTS = ("holds", "fails", "mixed", "not resolved", "not testable here")
"""What a claim's verdict can be. ``mixed``: it holds on some of the cases its rule looks at and fails
on others; ``not resolved``: the measurement cannot tell at the rule's level (one seed, say)."""


@dataclass(frozen=True)
class Claim:
    """One claim of the paper that an experiment can test, in our words (never the paper's).

    Attributes:
        key: a short name, unique in :data:`CLAIMS`.
        section: where the paper makes it (section, table or figure).
        claim: the claim, paraphrased.
        chapter: the chapter (a key of ``intriguing.cli.chapters``) whose module decides it; for a claim
            not testable here, the chapter that says why.
        measurement: what the chapter measures to decide it.
        rule: how that measurement decides the verdict: the statistic, and its level or margin.
        not_testable: empty when the book tests the claim; else why it cannot be tested here.
    """

    key: str
    section: str
    claim: str
    chapter: str
    measurement: str
    rule: str
    not_testable: str = ""


CLAIMS: tuple[Claim, ...] = (
    Claim("units-not-special", "§3, Figures 1-2",
          "On MNIST, the images that most excite a single unit of a hidden layer are no more alike than those "
          "that most excite a random direction of it.",
          "units",
          "Label purity of the top 10 test images per direction, 128-400 units against as many random directions "
          "of each network's last hidden layer (Conv, N100-100-10, AE400-10, every replicate), Mann-Whitney U.",
          "Per network and replicate, a case holds unless the units are more label-pure than the random "
          "directions at α = 0.01; holds if every case holds, fails if none does, mixed otherwise."),
    Claim("units-not-special-imagenet", "§3, Figures 3-4",
          "On AlexNet and the ImageNet validation set, random directions of the last hidden layer pick out "
          "images as semantically alike as single units do.",
          "units", "", "",
          not_testable="AlexNet's weights and the ImageNet validation set cannot be had offline, and the paper "
          "judges these figures by eye. The units chapter runs the same pipeline on EfficientNet-Lite0 with the "
          "20 labelled images that ship with foolbox (or a folder named by $INTRIGUING_IMAGENET_DIR), too few "
          "images for a measurement."),
    Claim("adversarial-near-every-image", "§4.2 (property 1), Table 1",
          "Every MNIST network studied, the linear ones with strong weight decay included, has an adversarial "
          "example very close to every image.",
          "blind_spots",
          "The search's success and mean minimum distortion on the attacked training images of the six "
          "Table 1 networks (random wrong targets), replicates' means.",
          "Per network, a case holds if every attacked image reached its target and the mean distortion is no "
          "more than the paper's times (1 + the profile's relative distortion tolerance); holds if every "
          "network does, fails if none does, mixed otherwise."),
    Claim("adversarial-near-every-image-imagenet", "§4.2 (property 1), Figure 5",
          "An ImageNet network has adversarial examples that look like the original images, at an average "
          "distortion of about 0.0065.",
          "spectral",
          "D(x, l) on EfficientNet-Lite0 (the offline substitute for AlexNet) for the 20 ImageNet images that "
          "ship with foolbox, random wrong targets among the 1,000 classes.",
          "The cases: each image reaching its target, and the mean distortion being at most the paper's "
          "0.0065. Holds if every case holds, fails if none does, mixed otherwise."),
    Claim("adversarial-near-every-image-quocnet", "§4.2 (property 1), Figure 6",
          "QuocNet, an unsupervised network trained on 10 M YouTube frames, has adversarial examples too.",
          "blind_spots", "", "",
          not_testable="QuocNet and its data were never published."),
    Claim("cross-model-transfer", "§4.2 (property 2), Table 2",
          "Adversarial examples made for one MNIST network fool networks trained with other hyperparameters "
          "(layers, weight decay, initial weights) far more than noise does.",
          "cross_model",
          "Table 2: each adversarial training set's error on each other network, minus the error of the "
          "weakest Gaussian noise of at least its average distortion (the margin, pp).",
          "Per off-diagonal cell, a case holds if its margin is positive; holds if every case does, fails if "
          "none does, mixed otherwise."),
    Claim("autoencoder-most-resilient", "§4.2, Table 2",
          "Of the six networks, the autoencoder-based one is the most resilient to the others' adversarial "
          "examples, though not immune.",
          "cross_model",
          "Table 2: each network's mean error on the five other networks' adversarial sets, and its margins "
          "over noise on them.",
          "Two cases: AE400-10's mean error on the others' sets is the lowest of the six networks; and its "
          "margin over noise is positive on every other set (not immune). Holds if both, fails if neither, "
          "mixed otherwise."),
    Claim("cross-training-set-transfer", "§4.2 (property 3), Table 4",
          "Adversarial examples made for a network fool networks trained on a disjoint half of the training "
          "set more than noise does.",
          "cross_training_set",
          "Table 4, sets as found: the error of M1's and M1''s sets on M2, and of M2's on M1 and M1', minus the "
          "error of the weakest Gaussian noise of at least their average distortion, every replicate.",
          "Per cell and replicate, a case holds if its margin is positive; holds if every case does, fails if "
          "none does, mixed otherwise."),
    Claim("disjoint-set-weaker", "§4.2, Tables 3-4",
          "Adversarial examples transfer less well to a network trained on a disjoint training set than to one "
          "trained on the same set.",
          "cross_training_set",
          "Table 4: for the sets made for M1 and M1', the error on the other P1 network minus the error on M2 "
          "(the gap, pp), as found and amplified, every replicate.",
          "Per set, reading and replicate, a case holds if the gap is positive; holds if every case does, "
          "fails if none does, mixed otherwise."),
    Claim("amplified-transfer", "§4.2, Table 4",
          "Magnified to an average distortion of 0.1, adversarial examples fool networks trained on either "
          "half far more often, while Gaussian noise of that size barely does.",
          "cross_training_set",
          "Table 4: amplified minus as-found error on each other network (the gain, pp), and the amplified "
          "sets' margins over Gaussian noise of stddev 0.1, every replicate.",
          "Per off-diagonal cell and replicate, a case holds if both the gain and the margin are positive; "
          "holds if every case does, fails if none does, mixed otherwise."),
    Claim("noise-far-weaker", "§4.2, Figure 7",
          "Gaussian noise far larger than an adversarial perturbation (stddev 1) leaves about half of the "
          "images classified correctly, where the adversarial examples leave none.",
          "blind_spots",
          "Accuracy of the Figure 7 networks (softmax1, N200-200-10) on the attacked training images with "
          "unclipped noise of stddev 1 (the caption's reading), against the search's success on them.",
          "Per Figure 7 network, a case holds if every attacked image reached its target and the accuracy "
          "under noise is within the profile's transfer tolerance (pp) of the caption's 51 %; holds if both "
          "cases do, fails if neither, mixed otherwise."),
    Claim("adversarial-training-improves", "§4.2",
          "A 100-100-10 network trained with pools of adversarial examples at every layer reaches a lower test "
          "error (below 1.2 %) than weight decay alone (1.6 %) or dropout (about 1.3 %).",
          "adversarial_training",
          "Test error over seeds of the pools at every layer (under the chapter's first reading of the pool's "
          "open settings and under the reading chosen on held-out images), weight decay and dropout variants, "
          "with the recipe chosen on held-out images, paired by seed (the variants of a seed share their "
          "initial weights and minibatch order).",
          "Four orderings (each reading's pools < weight decay, < dropout), each a case decided by a two-sided "
          "paired t-test at level 0.05: it holds when significantly lower, fails when significantly higher, "
          "and is not resolved otherwise (or with one seed); holds if all hold, fails if all fail, not "
          "resolved if none is resolved, mixed otherwise."),
    Claim("dropout-beats-weight-decay", "§4.2",
          "Carefully applied dropout lowers the test error of the 100-100-10 network below that of weight "
          "decay alone.",
          "adversarial_training",
          "Test error over seeds of the dropout and weight decay variants, paired by seed.",
          "One ordering (dropout < weight decay), decided by a two-sided paired t-test at level 0.05: holds "
          "when significantly lower, fails when significantly higher, not resolved otherwise (or with one "
          "seed)."),
    Claim("higher-layers-more-useful", "§4.2",
          "Adversarial examples made at the higher layers help training more than those made at the input.",
          "adversarial_training",
          "Test error over seeds of the pool at hidden layer 2 and at hidden layer 1, each against the pool at "
          "the input, paired by seed.",
          "Two orderings (hidden 2 < input, hidden 1 < input), each a case decided by a two-sided paired "
          "t-test at level 0.05; combined as for adversarial-training-improves. Lower error is read as more "
          "useful, whether or not the pools beat weight decay."),
    Claim("first-layer-unstable", "§4.3, Table 5",
          "A convolutional network can already be unstable at its first layer: that layer's operator norm lets "
          "it magnify a small perturbation.",
          "spectral",
          "The upper frame bound (largest singular value, by the Fourier formula for convolutions) of the first "
          "layer of our convolutional networks, EfficientNet-Lite0 and the MNIST Conv, and of AlexNet's where its "
          "weights are present; the fully connected networks' are shown beside them.",
          "Per convolutional network, a case holds if its first layer's upper bound exceeds 1; holds if every "
          "one's does, fails if none does, mixed otherwise."),
    Claim("table5-alexnet", "§4.3, Table 5",
          "AlexNet's eight layers have the lower and upper frame bounds of Table 5.",
          "spectral", "", "",
          not_testable="AlexNet's weights cannot be had offline. The spectral chapter computes Table 5 for "
          "torchvision's AlexNet where its weights are present, and checks the formula behind it everywhere."),
    Claim("instability-from-architecture", "§4.3",
          "Which perturbations are unstable depends on the architecture, not on the particular trained weights.",
          "cross_model",
          "On the first 1,000 attacked training images (the profile's min_target_examples), each aimed at one "
          "random wrong label: the minimum-distortion examples of N100-100-10 (replicate 0), of its other "
          "replicates (other initial weights; the same images, weight decay and training) and of N200-200-10 "
          "(another architecture; the same images and weight decay). Every perturbation is rescaled to RMS "
          "distortion 0.1 and fed to each of these networks; and the cosine between two networks' perturbations "
          "of the same image is measured, against a random direction.",
          "Per other replicate r of N100-100-10, four cases, each a two-sided paired t-test over the images at "
          "level 0.05. The architecture matters: (1) replicate 0's examples fool replicate r more often than "
          "N200-200-10; (2) replicate r is fooled more often by replicate 0's examples than by N200-200-10's; "
          "(3) replicate 0's perturbations have a higher cosine with replicate r's than with N200-200-10's. Each "
          "holds when significant in that direction, fails when significant in the other, is not resolved "
          "otherwise. The weights do not matter: (4) replicate r is fooled by replicate 0's examples as often as "
          "replicate 0 is; fails when significantly less often, holds otherwise. Holds if every case holds, "
          "fails if every case fails, mixed otherwise."),
)
"""Every claim of the paper the book decides, and those it cannot test, by section."""


def claim(key: str) -> Claim:
    """The :class:`Claim` of :data:`CLAIMS` named ``key``."""
    for found in CLAIMS:
        if found.key == key:
            return found
    raise KeyError(f"unknown claim {key!r}; choose one of {[c.key for c in CLAIMS]}")


def verdict_of(cases: Mapping[str, bool | None]) -> str:
    """The verdict of a claim from its cases, each True (holds), False (fails) or None (not resolved).

    Returns:
        ``"holds"`` if every case holds, ``"fails"`` if every case fails, ``"not resolved"`` if no
        case is resolved (or there is none), ``"mixed"`` otherwise.
    """
    outcomes = list(cases.values())
    if not outcomes or all(o is None for o in outcomes):
        return "not resolved"
    if all(o is True for o in outcomes):
        return "holds"
    if all(o is False for o in outcomes):
        return "fails"
    return "mixed"


def ordering_case(verdict: str) -> bool | None:
    """An ordering's verdict (``"holds"``, ``"reversed"``, ``"not resolved"``) as a case of :func:`verdict_of`."""
    cases = {"holds": True, "reversed": False, "not resolved": None}
    if verdict not in cases:
        raise ValueError(f"unknown ordering verdict {verdict!r}; choose one of {sorted(cases)}")
    return cases[verdict]


def decide(key: str, cases: Mapping[str, bool | None], measurement: str) -> dict[str, str]:
    """Decide one claim of :data:`CLAIMS` from its cases, record the verdict for the build
    (``results.json``'s ``claims``), and return it as a row of the chapter's claims table.

    Args:
        key: the claim.
        cases: each case the claim's rule looks at (a network, a cell, an ordering), True if it holds,
            False if it fails, None if the measurement cannot tell.
        measurement: what was measured, in one line with its numbers.

    Returns:
        ``claim``, ``section``, ``verdict``, ``cases`` (how many held / failed / were not resolved) and
        ``measurement``.
    """
    found = claim(key)
    if found.not_testable:
        raise ValueError(f"claim {key!r} is not testable here: {found.not_testable}")
    verdict = verdict_of(cases)
    held = sum(o is True for o in cases.values())
    failed = sum(o is False for o in cases.values())
    unresolved = sum(o is None for o in cases.values())
    counted = f"{held} held, {failed} failed" + (f", {unresolved} not resolved" if unresolved else "")
    row = {"claim": key, "section": found.section, "verdict": verdict, "cases": counted, "measurement": measurement}
    path = os.environ.get(RESULTS_VAR)
    if path:
        record = {"record": "claim", "chapter": os.environ.get(CHAPTER_VAR, ""), **row,
                  "failing cases": [name for name, o in cases.items() if o is False],
                  "unresolved cases": [name for name, o in cases.items() if o is None]}
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
    return row


def claims_table(rows: list[dict[str, str]]) -> pd.DataFrame:
    """A chapter's decided claims (rows of :func:`decide`) as a table indexed by claim, with the claim in
    words, for the notebook to show."""
    table = pd.DataFrame(rows).set_index("claim")
    table.insert(1, "the claim", [claim(key).claim for key in table.index])
    return table
