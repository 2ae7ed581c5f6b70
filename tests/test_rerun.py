"""Rerunning chapters from a bundle: nothing may be computed, and the glued values must match the run's."""

import json
import math

import pytest
import torch

from intriguing import artifacts, cache, plots, rerun
from intriguing.adversarial_training import RECORD_FORMAT
from intriguing.attacks import min_distortion_attack
from intriguing.models import SigmoidMLP


def test_with_no_compute_set_a_missing_result_and_every_training_or_search_entry_point_raise(monkeypatch, tiny):
    stored = artifacts.trained_network("softmax1", tiny)  # computed while computing is allowed
    monkeypatch.setenv(cache.NO_COMPUTE_VAR, "1")
    again = artifacts.trained_network("softmax1", tiny)  # a cached result is still served
    assert all(torch.equal(p, q) for p, q in zip(stored.model.parameters(), again.model.parameters()))
    with pytest.raises(cache.NotComputed, match=r"networks softmax2 is not in the cache .*\$INTRIGUING_NO_COMPUTE forbids"):
        artifacts.trained_network("softmax2", tiny)
    with pytest.raises(cache.NotComputed, match="attacks softmax1-test-0"):
        artifacts.adversarial_set("softmax1", "test", tiny)
    with pytest.raises(cache.NotComputed, match="a minimum-distortion search"):
        min_distortion_attack(SigmoidMLP(()), torch.rand(2, 1, 28, 28), torch.tensor([1, 2]))
    with pytest.raises(cache.NotComputed, match="anything"):
        cache.cached("networks", "anything", {"a": 1}, lambda: pytest.fail("computed"))
    monkeypatch.setenv(cache.NO_COMPUTE_VAR, "0")  # "0" and "" allow computing
    cache.forbid_compute("allowed")


def test_glue_logs_each_value_with_its_chapter_and_nan_as_text(tmp_path, monkeypatch):
    log = tmp_path / "glue.jsonl"
    monkeypatch.setenv(plots.GLUE_VAR, str(log))
    monkeypatch.setenv("INTRIGUING_CHAPTER", "units")
    plots.glue("ratio", 0.25)
    plots.glue("count", torch.tensor(3))
    plots.glue("sd", float("nan"))
    plots.glue("verdict", "holds")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines == [{"chapter": "units", "name": "ratio", "value": 0.25}, {"chapter": "units", "name": "count", "value": 3},
                     {"chapter": "units", "name": "sd", "value": "nan"},
                     {"chapter": "units", "name": "verdict", "value": "holds"}]
    assert rerun.read_glue(log) == {"units": {"ratio": 0.25, "count": 3, "sd": "nan", "verdict": "holds"}}


def test_glue_differences_name_every_changed_missing_or_extra_value(tmp_path):
    assert rerun.glue_differences({"a": 1.5, "b": math.nan, "c": "x"}, {"a": 1.5, "b": math.nan, "c": "x"}) == []
    found = rerun.glue_differences({"a": 1.5, "b": 2, "gone": 1}, {"a": 1.5000001, "b": 2, "new": 3})
    assert found == ["a: 1.5 in the run, 1.5000001 rerun", "gone: glued in the run only", "new: glued in the rerun only"]
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"chapter": "units", "name": "a", "value": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"broken.jsonl, line 2: not a glue record"):
        rerun.read_glue(broken)


def test_a_result_computed_on_an_adversarially_trained_network_is_asked_for_by_its_records_format(tiny):
    network = {"format": RECORD_FORMAT, "settings": {}, "seed": 0, "train_subset": tiny.train_subset}
    assert artifacts.asked_for("attacks", "weight_decay-seed0-test", {"network": network, "search": {}}, tiny)
    for stale in ({**network, "format": RECORD_FORMAT - 1}, {**network, "train_subset": 1}):
        assert not artifacts.asked_for("attacks", "weight_decay-seed0-test", {"network": stale, "search": {}}, tiny)


def test_a_derived_result_is_asked_for_when_every_result_it_comes_from_is(tiny):
    sets = {name: artifacts.result_key(name, tiny, settings=tiny.search, split="train", target_seed=0)
            for name in ("softmax1", "N100-100-10")}
    derived = {"table": "Table 2", "train_subset": tiny.train_subset, "sets": sets}
    assert artifacts.asked_for("attacks", "table2", derived, tiny)
    stale = {**sets["softmax1"], "network": {**sets["softmax1"]["network"], "format": -1}}
    assert not artifacts.asked_for("attacks", "table2", {**derived, "sets": {**sets, "softmax1": stale}}, tiny)
    assert not artifacts.asked_for("attacks", "table2", {**derived, "sets": {}}, tiny)


def test_table2_is_derived_from_the_sets_and_a_reader_needs_only_the_table(tiny, tmp_path, monkeypatch):
    from intriguing.chapters import cross_model

    needs = tmp_path / "needs.jsonl"
    monkeypatch.setenv(cache.NEEDS_VAR, str(needs))
    first = cross_model.table2(tiny)
    assert [json.loads(line)["file"].rsplit("-", 1)[0] for line in needs.read_text().splitlines()] == ["table2"]
    monkeypatch.setenv(cache.NO_COMPUTE_VAR, "1")
    again = cross_model.table2(tiny)
    assert first.equals(again) and list(first.columns)[-1] == "Av. distortion"
