"""The benchmark script keeps running: a tiny run must report every ratio it promises."""

import importlib.util
from pathlib import Path

from intriguing.profiles import Profile
import intriguing.profiles as profiles

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "attack_benchmark.py"
TINY = Profile(name="tiny", train_subset=200,
               lbfgs_iterations={"softmax": 30, "mlp": 30, "autoencoder": 5, "ae_softmax": 5})


def test_attack_benchmark_reports_its_ratios(monkeypatch, capsys):
    monkeypatch.setitem(profiles.PROFILES, "tiny", TINY)
    spec = importlib.util.spec_from_file_location("attack_benchmark", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.main(["--profile", "tiny", "--examples", "6", "--scipy-examples", "2"])
    assert out["speed_ratio"] > 0
    assert 0.9 < out["distortion_ratio_vs_scipy"] < 1.1
    assert all(out[f"exact_ratio_softmax{i}_sharpened"] >= 0.999 for i in (1, 2, 3))
    assert "ours / best fully successful foolbox peer" in capsys.readouterr().out
