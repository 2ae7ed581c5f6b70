import json

import pytest

from intriguing import timing


def test_events_are_recorded_only_while_the_variable_names_a_file(tmp_path, monkeypatch):
    events = tmp_path / "events.jsonl"
    monkeypatch.delenv(timing.ENV_VAR, raising=False)
    timing.record("chapter", "intro", 1.0)
    assert not events.exists()
    monkeypatch.setenv(timing.ENV_VAR, str(events))
    timing.record("training", "softmax1", 12.345, stage="lbfgs", iterations=400, stop="window")
    timing.record("training", "N100-100-10", 90.0, stage="lbfgs", iterations=400, stop="window")
    timing.record("chapter", "networks", 130.0)
    timing.record("chapter", "blind_spots", 300.0)
    with pytest.raises(ValueError, match="non-negative"):
        timing.record("chapter", "x", float("nan"))

    rec = timing.summarise(events, "smoke", 500.0)
    assert rec["chapters"] == {"networks": 130.0, "blind_spots": 300.0}
    assert [t["name"] for t in rec["training"]] == ["softmax1", "N100-100-10"]
    assert rec["training"][0] == {"name": "softmax1", "seconds": 12.35, "stage": "lbfgs", "iterations": 400,
                                  "stop": "window"}
    assert rec["training_seconds"] == 102.35 and rec["profile"] == "smoke" and rec["torch_threads"] >= 1

    table = timing.readme_table([rec]).splitlines()
    assert len(table) == 3
    assert "| `smoke` |" in table[2] and "8 min 20 s" in table[2] and "blind_spots, 5 min 00 s" in table[2]


def test_a_corrupt_event_line_is_named(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"kind": "chapter", "name": "a", "seconds": 1}) + "\n{not json\n")
    with pytest.raises(ValueError, match="events.jsonl:2 is not a timing event"):
        timing.summarise(events, "smoke", 1.0)
    events.write_text(json.dumps({"kind": "lunch", "name": "a", "seconds": 1}) + "\n")
    with pytest.raises(ValueError, match="unknown kind 'lunch'"):
        timing.summarise(events, "smoke", 1.0)


def test_the_readmes_profile_table_is_made_from_the_timing_records():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    table = readme.split("<!-- profile-table:start -->\n")[1].split("<!-- profile-table:end -->")[0].strip()
    records = [json.loads((root / "timings" / f"{name}.json").read_text(encoding="utf-8"))
               for name in ("smoke", "full") if (root / "timings" / f"{name}.json").exists()]
    assert records, "no timing record under timings/: run a build"
    assert table == timing.readme_table(records)
