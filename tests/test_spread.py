import math

import pandas as pd
import pytest

from intriguing import paper, spread


def _samples(values: dict[str, list[float]], column: str = "Test error") -> pd.DataFrame:
    rows = [(name, r, v) for name, vs in values.items() for r, v in enumerate(vs)]
    frame = pd.DataFrame(rows, columns=["network", "replicate", column])
    return frame.set_index(["network", "replicate"])


def test_the_summary_of_hand_set_replicates():
    samples = _samples({"softmax1": [7.0, 8.0, 9.0], "softmax2": [9.4]})
    summary = spread.summarise(samples)
    assert summary.loc["softmax1", ("Test error", "mean")] == 8.0
    assert summary.loc["softmax1", ("Test error", "sd")] == 1.0  # n - 1 in the denominator
    assert (summary.loc["softmax1", ("Test error", "min")], summary.loc["softmax1", ("Test error", "max")]) == (7, 9)
    assert math.isnan(summary.loc["softmax2", ("Test error", "sd")])  # one replicate: spread unknown, not zero
    beside = spread.beside_paper(samples, paper.TABLE1)
    one = beside.loc[("softmax1", "Test error")]
    assert one["paper"] == 7.4 and bool(one["paper in range"]) and one["gap (sd)"] == pytest.approx(0.6)
    assert pd.isna(beside.loc[("softmax2", "Test error"), "paper in range"])
    assert list(spread.beside_paper(samples, paper.TABLE1, only_replicated=True).index) == [("softmax1", "Test error")]


def test_a_samples_frame_needs_a_replicate_level_and_no_nan():
    with pytest.raises(KeyError, match="indexed by"):
        spread.summarise(pd.DataFrame({"Test error": [1.0]}, index=pd.Index(["softmax1"], name="network")))
    with pytest.raises(ValueError, match="no NaN"):
        spread.summarise(_samples({"softmax1": [1.0, float("nan")]}))


def test_the_spread_widens_a_tolerance_only_where_it_is_wider():
    samples = _samples({"softmax1": [5.0, 9.0, 13.0], "softmax2": [9.4, 9.5, 9.6]})  # sd 4.0 and 0.1
    means, sd = spread.replicate_means(samples), spread.replicate_sd(samples)
    # softmax1's mean 9.0 is 1.6 pp from 7.4: outside ±1.5, inside 3 sd = 12.
    with pytest.raises(paper.PaperMismatch, match="softmax1"):
        paper.compare_with_paper(means, "Table 1", paper.Tolerance(1.5), profile="test")
    side = paper.compare_with_paper(means, "Table 1", paper.Tolerance(1.5), profile="test", spread=sd)
    assert side.loc["softmax1", ("tolerance", "")] == "3 sd: Test error"
    assert side.loc["softmax2", ("tolerance", "")] == "stated"
    # A tight spread does not rescue a real gap.
    far = _samples({"softmax2": [12.0, 12.1, 12.2]})
    with pytest.raises(paper.PaperMismatch, match="softmax2"):
        paper.compare_with_paper(spread.replicate_means(far), "Table 1", paper.Tolerance(1.5), profile="test",
                                 spread=spread.replicate_sd(far))


def test_a_paired_ordering_by_hand():
    from intriguing.spread import paired_ordering

    seeds = pd.Index([0, 1, 2, 3])
    lower, higher = pd.Series([1.0, 2.0, 3.0, 4.0], index=seeds), pd.Series([2.0, 2.5, 4.0, 4.5], index=seeds)
    # differences −1, −0.5, −1, −0.5: mean −0.75, sd 0.2887, t = −0.75 / (0.2887 / 2) = −5.196, 3 df: p = 0.0138
    found = paired_ordering(lower, higher)
    assert found["t"] == pytest.approx(-5.196, abs=1e-3) and found["p-value"] == pytest.approx(0.0138, abs=1e-4)
    assert found["verdict"] == "holds" and found["seeds"] == 4
    assert paired_ordering(higher, lower)["verdict"] == "reversed"
    assert paired_ordering(lower, higher, level=0.01)["verdict"] == "not resolved"
    constant = paired_ordering(lower, lower + 1.0)
    assert constant["t"] == float("-inf") and constant["p-value"] == 0 and constant["verdict"] == "holds"
    same = paired_ordering(lower, lower)
    assert same["p-value"] == 1 and same["verdict"] == "not resolved"
    one = paired_ordering(lower.iloc[:1], higher)  # only seed 0 pairs up
    assert one["seeds"] == 1 and one["test"] == "one seed: no test" and one["verdict"] == "not resolved"
    assert paired_ordering(lower, higher, unit="images")["test"].endswith(", 4 images")
    assert paired_ordering(lower.iloc[:1], higher, unit="images")["test"] == "one image: no test"
    with pytest.raises(ValueError, match="level must lie in"):
        paired_ordering(lower, higher, level=1.5)
