import pandas as pd
import pytest

from intriguing import paper
from intriguing.paper import PaperMismatch, compare_with_paper


def ours_table1(changes=None):
    ours = paper.TABLE1[["Training error", "Test error"]].copy()
    for (row, col), value in (changes or {}).items():
        ours.loc[row, col] = value
    return ours


def test_tables_hold_the_papers_numbers():
    assert paper.TABLE1.loc["N200-200-10", "Test error"] == 1.54
    assert paper.TABLE2.shape == (8, 7) and paper.TABLE2.loc["AE400-10", "N100-100-10"] == 9.4
    assert paper.TABLE3.loc["M1'", "Error on P2"] == 2.5
    assert paper.TABLE4.shape == (8, 4) and paper.TABLE4.iloc[5, 2] == 22
    assert paper.TABLE5.loc["Conv. 1", "Upper bound"] == 20
    assert paper.FIGURES["figure5_average_distortion"] == 0.006508


def test_inside_tolerance_passes_and_shows_both():
    side = compare_with_paper(ours_table1({("softmax1", "Test error"): 8.4}), paper.TABLE1, 1.5)
    assert side.loc["softmax1", ("Test error", "ours")] == 8.4
    assert side.loc["softmax1", ("Test error", "paper")] == 7.4
    assert side.loc["softmax1", ("Test error", "diff")] == pytest.approx(1.0)
    assert (side["ok"] == "✓").all()


def test_outside_tolerance_raises_naming_the_cell():
    with pytest.raises(PaperMismatch, match=r"softmax3 / Test error: ours 25, paper 20"):
        compare_with_paper(ours_table1({("softmax3", "Test error"): 25.0}), paper.TABLE1, 1.5)


def test_explained_deviation_passes_but_must_stay_a_deviation():
    ours = ours_table1({("softmax3", "Test error"): 25.0})
    side = compare_with_paper(ours, paper.TABLE1, 1.5, explained={("softmax3", "Test error"): "why"})
    assert side.loc["softmax3", ("ok", "")] == "outside: Test error"
    with pytest.raises(PaperMismatch, match="explained as a deviation but is within tolerance"):
        compare_with_paper(ours_table1(), paper.TABLE1, 1.5, explained={("softmax3", "Test error"): "why"})


def test_relative_tolerance():
    ours = pd.DataFrame({"Av. min. distortion": [0.062 * 1.2]}, index=["softmax1"])
    compare_with_paper(ours, paper.TABLE1, 0.25, relative=True)
    with pytest.raises(PaperMismatch, match="25% relative"):
        compare_with_paper(ours * 1.2, paper.TABLE1, 0.25, relative=True)


def test_unknown_rows_or_columns():
    with pytest.raises(KeyError, match="softmax9"):
        compare_with_paper(pd.DataFrame({"Test error": [1.0]}, index=["softmax9"]), paper.TABLE1, 1.0)
