import pandas as pd
import pytest

from intriguing import paper
from intriguing.paper import PaperMismatch, Tolerance, compare_with_paper

PP = Tolerance(1.5)


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
    side = compare_with_paper(ours_table1({("softmax1", "Test error"): 8.4}), "Table 1", PP, profile="smoke")
    assert side.loc["softmax1", ("Test error", "ours")] == 8.4
    assert side.loc["softmax1", ("Test error", "paper")] == 7.4
    assert side.loc["softmax1", ("Test error", "diff")] == pytest.approx(1.0)
    assert (side["ok"] == "✓").all()


def test_outside_tolerance_raises_naming_the_cell():
    with pytest.raises(PaperMismatch, match=r"softmax2 / Test error: ours 25, paper 9.4"):
        compare_with_paper(ours_table1({("softmax2", "Test error"): 25.0}), "Table 1", PP, profile="full")


def test_recorded_deviation_passes_in_its_profile_only_and_must_stay_a_deviation():
    ours = ours_table1({("softmax3", "Test error"): 25.0, ("softmax3", "Training error"): 25.0})
    side = compare_with_paper(ours, "Table 1", PP, profile="full")
    assert side.loc["softmax3", ("ok", "")] == "outside: Training error, Test error"
    with pytest.raises(PaperMismatch, match="softmax3 / Test error: ours 25"):
        compare_with_paper(ours, "Table 1", PP, profile="smoke")
    with pytest.raises(PaperMismatch, match="recorded as a deviation in paper.DEVIATIONS but is within tolerance"):
        compare_with_paper(ours_table1(), "Table 1", PP, profile="full")


def test_every_recorded_deviation_names_a_cell_of_its_table_and_a_measurement():
    for d in paper.DEVIATIONS:
        table = paper.TABLES[d.table]
        assert d.row in table.index and d.column in table.columns, d
        assert d.why and d.measured_in, d


def test_relative_and_per_column_tolerances():
    ours = pd.DataFrame({"Av. min. distortion": [0.062 * 1.2]}, index=["softmax1"])
    compare_with_paper(ours, "Table 1", Tolerance(0.25, relative=True), profile="smoke")
    with pytest.raises(PaperMismatch, match="25% relative"):
        compare_with_paper(ours * 1.2, "Table 1", Tolerance(0.25, relative=True), profile="smoke")
    both = ours_table1().assign(**{"Av. min. distortion": paper.TABLE1["Av. min. distortion"] * 1.2})
    tolerance = {"Training error": PP, "Test error": PP, "Av. min. distortion": Tolerance(0.25, relative=True)}
    compare_with_paper(both, "Table 1", tolerance, profile="smoke")
    with pytest.raises(KeyError, match="no tolerance for columns"):
        compare_with_paper(both, "Table 1", {"Test error": PP}, profile="smoke")


def test_unknown_tables_rows_or_columns():
    with pytest.raises(KeyError, match="softmax9"):
        compare_with_paper(pd.DataFrame({"Test error": [1.0]}, index=["softmax9"]), "Table 1", PP, profile="full")
    with pytest.raises(KeyError, match="unknown table 'Table 9'"):
        compare_with_paper(ours_table1(), "Table 9", PP, profile="full")
    with pytest.raises(ValueError, match="non-negative"):
        Tolerance(-1)


def test_every_compared_cell_is_recorded_with_its_verdict_while_asked(tmp_path, monkeypatch):
    import json

    results = tmp_path / "results.jsonl"
    monkeypatch.setenv(paper.RESULTS_VAR, str(results))
    monkeypatch.setenv(paper.CHAPTER_VAR, "networks")
    ours = ours_table1({("softmax3", "Test error"): 25.0, ("softmax3", "Training error"): 25.0})
    compare_with_paper(ours, "Table 1", PP, profile="full")
    with pytest.raises(PaperMismatch):
        compare_with_paper(ours_table1({("softmax2", "Test error"): 25.0}), "Table 1", PP, profile="full")
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(rows) == 2 * ours.size
    first = {(r["row"], r["column"]): r for r in rows[:ours.size]}
    assert first[("softmax3", "Test error")]["verdict"] == "outside, a recorded deviation"
    assert first[("softmax1", "Test error")] == {"chapter": "networks", "table": "Table 1", "row": "softmax1",
                                                 "column": "Test error", "ours": 7.4, "paper": 7.4,
                                                 "tolerance": PP.describe(), "verdict": "within tolerance"}
    failed = {(r["row"], r["column"]): r for r in rows[ours.size:]}
    assert failed[("softmax2", "Test error")]["verdict"] == "outside"


def test_a_recorded_deviation_at_the_tolerance_edge_may_fall_inside_within_its_spread():
    edge = paper.TABLE1.loc["softmax3", "Test error"] + 1.4  # 0.1 pp inside the ±1.5 band
    ours = ours_table1({("softmax3", "Test error"): edge, ("softmax3", "Training error"): 25.0})
    sd = pd.DataFrame(float("nan"), index=ours.index, columns=ours.columns)
    sd.loc["softmax3", "Test error"] = 0.1  # 3 sd = 0.3 pp: the replicates cannot place the cell
    compare_with_paper(ours, "Table 1", PP, profile="full", spread=sd)
    sd.loc["softmax3", "Test error"] = 0.01  # 3 sd = 0.03 pp: the cell is inside, the record is stale
    with pytest.raises(PaperMismatch, match="softmax3 / Test error is recorded as a deviation"):
        compare_with_paper(ours, "Table 1", PP, profile="full", spread=sd)
