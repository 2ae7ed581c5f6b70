from dataclasses import replace

import pytest
import torch
from torch import nn

from intriguing import artifacts, train
from intriguing.models import SigmoidMLP, get_spec


def hand_set_mlp() -> SigmoidMLP:
    """784-3-10 with every first-layer weight 0.1 and every second-layer weight 2."""
    model = SigmoidMLP((3,))
    with torch.no_grad():
        model.layers[0].weight.fill_(0.1)
        model.layers[2].weight.fill_(2.0)
        model.layers[0].bias.fill_(100.0)  # biases are never decayed
    return model


@pytest.mark.parametrize("mode, expected", [
    # Σw² is 3·784·0.01 = 23.52 and 10·3·4 = 120; λ = (1, 0.5).
    ("sum", 23.52 + 60.0),
    ("half", (23.52 + 60.0) / 2),
    ("per_unit", 23.52 / 3 + 60.0 / 10),  # k = units in the layer: 3, then 10
])
def test_weight_decay_formulas(mode, expected):
    assert train.weight_decay(hand_set_mlp(), (1.0, 0.5), mode).item() == pytest.approx(expected, rel=1e-6)


def test_weight_decay_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown decay mode 'l1'"):
        train.weight_decay(hand_set_mlp(), (1.0, 0.5), "l1")
    with pytest.raises(ValueError, match="1 weight-decay values for 2 weight layers"):
        train.weight_decay(hand_set_mlp(), (1.0,))


def test_lbfgs_solves_a_quadratic_and_reports_convergence():
    target = torch.tensor([3.0, -2.0, 0.5])
    holder = nn.Module()
    holder.x = nn.Parameter(torch.zeros(3))
    log = train.minimize_lbfgs(holder, [holder.x], lambda: (holder.x - target).pow(2).sum(), max_iter=200)
    assert torch.allclose(holder.x.detach(), target, atol=1e-5)
    assert log.converged and log.iterations < 200
    assert log.losses[-1] < 1e-9


def test_window_fall_measures_the_relative_fall_over_the_window():
    losses = [10.0, 8.0, 6.0, 5.0, 4.0, 3.9]  # every 25 iterations; the window is 100 iterations
    assert train.window_fall(losses) == pytest.approx((8.0 - 3.9) / 8.0)
    assert train.window_fall(losses[:4]) == float("inf")  # fewer than 100 iterations recorded


def _regression(seed: int = 0, n: int = 256, hidden: int = 16, noise: float = 0.0):
    gen = torch.Generator().manual_seed(seed)
    x, w = torch.randn(n, 20, generator=gen), torch.randn(20, 1, generator=gen)
    y = torch.tanh(x @ w) + noise * torch.randn(n, 1, generator=gen)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(20, hidden), nn.Tanh(), nn.Linear(hidden, 1))
    return model, (lambda: (model(x) - y).pow(2).mean())


def test_interrupted_lbfgs_resumes_to_the_same_weights(tmp_path):
    reference, objective = _regression()
    train.minimize_lbfgs(reference, list(reference.parameters()), objective, max_iter=60)

    model, objective = _regression()
    calls = {"n": 0}

    def dies_midway():
        calls["n"] += 1
        if calls["n"] == 40:  # some way into the second checkpoint interval
            raise KeyboardInterrupt
        return objective()

    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        train.minimize_lbfgs(model, list(model.parameters()), dies_midway, max_iter=60, checkpoint=ckpt)
    assert ckpt.exists()
    model2, objective2 = _regression()  # a new process: fresh weights, resumed from the checkpoint
    log = train.minimize_lbfgs(model2, list(model2.parameters()), objective2, max_iter=60, checkpoint=ckpt)
    assert not ckpt.exists()
    assert log.iterations == 60
    for p, q in zip(reference.parameters(), model2.parameters()):
        assert torch.equal(p, q)


def test_the_window_test_stops_a_run_that_is_the_prefix_of_a_run_to_the_cap():
    slow = {"n": 1024, "hidden": 8, "noise": 0.5}  # a noise floor that the objective approaches slowly
    model, objective = _regression(**slow)
    log = train.minimize_lbfgs(model, list(model.parameters()), objective, max_iter=400, converge_below=0.02)
    assert log.stop == "window" and log.converged and log.iterations < 400
    assert train.window_fall(log.losses) < 0.02 <= train.window_fall(log.losses[:-1])
    capped, objective = _regression(**slow)
    cap_log = train.minimize_lbfgs(capped, list(capped.parameters()), objective, max_iter=log.iterations)
    assert cap_log.stop == "cap" and not cap_log.converged
    assert cap_log.losses == log.losses
    for p, q in zip(model.parameters(), capped.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="converge_below must be positive"):
        train.minimize_lbfgs(model, list(model.parameters()), objective, max_iter=5, converge_below=0)


def test_a_run_to_the_cap_continues_from_the_handover_of_the_stopped_run(tmp_path):
    slow = {"n": 1024, "hidden": 8, "noise": 0.5}
    handover = tmp_path / "to-the-cap.ckpt"
    model, objective = _regression(**slow)
    log = train.minimize_lbfgs(model, list(model.parameters()), objective, max_iter=400, converge_below=0.02,
                               handover=handover)
    assert log.stop == "window" and handover.exists()
    cap = log.iterations + 50
    reference, objective = _regression(**slow)
    uninterrupted = train.minimize_lbfgs(reference, list(reference.parameters()), objective, max_iter=cap)

    continued, objective = _regression(**slow)  # fresh weights: everything comes from the handover
    calls = {"n": 0}

    def counted():
        calls["n"] += 1
        return objective()

    cap_log = train.minimize_lbfgs(continued, list(continued.parameters()), counted, max_iter=cap, checkpoint=handover)
    assert not handover.exists()
    assert (cap_log.stop, cap_log.iterations) == (uninterrupted.stop, uninterrupted.iterations)
    assert cap_log.iterations > log.iterations
    assert cap_log.losses == uninterrupted.losses
    for p, q in zip(reference.parameters(), continued.parameters()):
        assert torch.equal(p, q)
    assert calls["n"] < 50 * 3  # about 50 iterations' evaluations, not those of the first log.iterations
    assert cap_log.seconds_before == log.seconds and cap_log.seconds > log.seconds


def test_training_is_deterministic(tmp_path, monkeypatch, tiny):
    monkeypatch.setenv("INTRIGUING_CACHE", str(tmp_path / "a"))
    first = artifacts.trained_network("N100-100-10", tiny)
    monkeypatch.setenv("INTRIGUING_CACHE", str(tmp_path / "b"))
    second = artifacts.trained_network("N100-100-10", tiny)
    assert first.stages["lbfgs"].iterations == 30
    for p, q in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(p, q)


def test_trained_networks_come_from_the_cache(monkeypatch, tiny):
    first = artifacts.trained_network("softmax1", tiny)
    monkeypatch.setattr(artifacts, "fit", lambda *a, **k: pytest.fail("retrained a cached network"))
    again = artifacts.trained_network("softmax1", tiny)
    assert torch.equal(first.model.layers[0].weight, again.model.layers[0].weight)
    assert again.stages["lbfgs"].losses == first.stages["lbfgs"].losses


def test_cache_key_separates_configurations(tiny):
    spec = get_spec("softmax1")
    keys = {str(artifacts.training_config(spec, tiny, mode)) for mode in train.DECAY_MODES}
    assert len(keys) == 3
    bigger = replace(tiny, train_subset=400)
    assert artifacts.training_config(spec, bigger, "half") != artifacts.training_config(spec, tiny, "half")
    # Knobs of other families do not touch a softmax network's key.
    other = replace(tiny, conv_epochs=9)
    assert artifacts.training_config(spec, other, "half") == artifacts.training_config(spec, tiny, "half")
    # The window test is part of the key: a network trained to the cap is another network.
    assert (artifacts.training_config(spec, tiny, "half", to_cap=True)
            != artifacts.training_config(spec, replace(tiny, converge_below=0.05), "half"))
    # The seed is part of the key.
    assert (artifacts.training_config(replace(spec, seed=5), tiny, "half")
            != artifacts.training_config(spec, tiny, "half"))


def test_a_replicate_changes_the_network_and_keeping_it_loads_the_cached_one(monkeypatch, tiny):
    default = artifacts.trained_network("softmax1", tiny)
    other = artifacts.trained_network("softmax1", tiny, replicate=1)
    assert other.model is not default.model
    assert not torch.equal(default.model.layers[0].weight, other.model.layers[0].weight)
    assert artifacts.replicate_spec("softmax1", 1).seed == default_seed("softmax1") + artifacts.REPLICATE_SEED_STRIDE
    monkeypatch.setattr(artifacts, "fit", lambda *a, **k: pytest.fail("retrained a cached network"))
    again = artifacts.trained_network("softmax1", tiny, replicate=1)
    assert torch.equal(other.model.layers[0].weight, again.model.layers[0].weight)
    with pytest.raises(ValueError, match="a replicate is a non-negative integer"):
        artifacts.trained_network("softmax1", tiny, replicate=-1)


def test_a_replicate_draws_its_own_p1_p2_split_and_targets(tiny):
    p1, p1_other = artifacts.training_split("P1", tiny), artifacts.training_split("P1", tiny, replicate=1)
    assert not torch.equal(p1.images, p1_other.images)
    assert torch.equal(artifacts.training_split("train", tiny).images, artifacts.training_split("train", tiny, 1).images)
    first, result = artifacts.adversarial_set("softmax1", "test", tiny)
    second, other = artifacts.adversarial_set("softmax1", "test", tiny, replicate=1)
    assert second.target_seed == 1 and not torch.equal(first.targets, second.targets)
    assert not torch.equal(result.adversarial, other.adversarial)
    assert artifacts.result_key("softmax1", tiny) != artifacts.result_key("softmax1", tiny, replicate=1)


def default_seed(name: str) -> int:
    from intriguing.models import get_spec

    return get_spec(name).seed


def test_autoencoder_and_conv_train_and_lower_their_objectives(tiny):
    ae = artifacts.trained_network("AE400-10", tiny)
    assert set(ae.stages) == {"autoencoder", "softmax"}
    assert all(log.losses[-1] < log.losses[0] for log in ae.stages.values())
    conv = artifacts.trained_network("Conv", tiny)
    assert conv.stages["adam"].iterations == 1 and not conv.model.training


def test_training_split_sizes(tiny):
    assert len(artifacts.training_split("train", tiny)) == 200
    p1, p2 = artifacts.training_split("P1", tiny), artifacts.training_split("P2", tiny)
    assert len(p1) == len(p2) == 100
    with pytest.raises(ValueError, match="unknown training set 'P3'"):
        artifacts.training_split("P3", tiny)


def test_unknown_decay_mode_and_profile(tiny):
    with pytest.raises(ValueError, match="unknown decay mode"):
        artifacts.trained_network("softmax1", tiny, "l2")
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        artifacts.trained_network("softmax1", "huge")
    with pytest.raises(ValueError, match="unknown network 'N1'"):
        artifacts.trained_network("N1", tiny)


def test_fit_rejects_an_empty_training_set():
    from intriguing.data import Split
    from intriguing.models import build_model

    empty = Split(torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="empty set"):
        train.fit(build_model("softmax1"), get_spec("softmax1"), empty, lbfgs_iterations={"softmax": 1},
                  conv_epochs=1)


def test_a_network_the_window_test_did_not_stop_is_its_own_run_to_the_cap(monkeypatch, tiny):
    windowed = replace(tiny, converge_below=0.05)  # 30 iterations: too few for a 100-iteration window
    stopped = artifacts.trained_network("N100-100-10", windowed)
    assert stopped.stages["lbfgs"].stop == "cap"
    monkeypatch.setattr(artifacts, "fit", lambda *a, **k: pytest.fail("trained the same run twice"))
    capped = artifacts.trained_network("N100-100-10", windowed, to_cap=True)
    for p, q in zip(stopped.model.parameters(), capped.model.parameters()):
        assert torch.equal(p, q)


def test_the_networks_chapters_run_to_the_cap_continues_the_stopped_one(monkeypatch, tmp_path, tiny):
    windowed = replace(tiny, lbfgs_iterations={**tiny.lbfgs_iterations, "mlp": 200}, converge_below=0.9999,
                       cap_comparison=("N100-100-10",))
    stopped = artifacts.trained_network("N100-100-10", windowed)
    assert stopped.stages["lbfgs"].stop == "window" and stopped.stages["lbfgs"].iterations < 200
    continued = artifacts.trained_network("N100-100-10", windowed, to_cap=True)
    assert continued.stages["lbfgs"].seconds_before == stopped.stages["lbfgs"].seconds

    monkeypatch.setenv("INTRIGUING_CACHE", str(tmp_path / "alone"))  # the same run to the cap, from scratch
    alone = artifacts.trained_network("N100-100-10", replace(windowed, cap_comparison=()), to_cap=True)
    assert alone.stages["lbfgs"].seconds_before == 0
    assert alone.stages["lbfgs"].losses == continued.stages["lbfgs"].losses
    for p, q in zip(alone.model.parameters(), continued.model.parameters()):
        assert torch.equal(p, q)


def test_a_damaged_checkpoint_is_reported_and_the_stage_starts_afresh(tmp_path):
    reference, objective = _regression()
    train.minimize_lbfgs(reference, list(reference.parameters()), objective, max_iter=30)
    ckpt = tmp_path / "run.ckpt"
    model, objective = _regression()
    with pytest.raises(KeyboardInterrupt):
        train.minimize_lbfgs(model, list(model.parameters()), _dies_after(objective, 40), max_iter=60, checkpoint=ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:100])  # truncated
    model2, objective2 = _regression()
    with pytest.warns(UserWarning, match=f"ignoring unreadable checkpoint {ckpt}"):
        log = train.minimize_lbfgs(model2, list(model2.parameters()), objective2, max_iter=30, checkpoint=ckpt)
    assert log.iterations == 30 and log.seconds_before == 0
    for p, q in zip(reference.parameters(), model2.parameters()):
        assert torch.equal(p, q)


def _dies_after(objective, n):
    calls = {"n": 0}

    def dies():
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return objective()

    return dies


def test_a_non_finite_objective_stops_training_with_its_iteration():
    model, objective = _regression()
    with torch.no_grad():
        model[0].weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="the objective is nan at the start"):
        train.minimize_lbfgs(model, list(model.parameters()), objective, max_iter=30)


def test_fit_rejects_nan_images_and_labels_that_do_not_match(tiny):
    from intriguing.data import Split

    spec = get_spec("softmax1")
    images = torch.rand(20, 1, 28, 28)
    for data, message in [(Split(images.clone().index_fill_(0, torch.tensor([3]), float("nan")), torch.zeros(20, dtype=torch.long)),
                           "NaN or infinite pixels"),
                          (Split(images, torch.zeros(10, dtype=torch.long)), "20 images but labels of shape")]:
        with pytest.raises(ValueError, match=message):
            train.fit(SigmoidMLP((3,)), spec, data, lbfgs_iterations=tiny.lbfgs_iterations, conv_epochs=1)


def test_an_adversarial_set_of_the_network_trained_to_the_cap_is_its_own(tiny):
    windowed = replace(tiny, lbfgs_iterations={**tiny.lbfgs_iterations, "mlp": 200}, converge_below=0.9999,
                       attack_examples=4)
    assert artifacts.result_key("M1", windowed, to_cap=True)["network"]["converge_below"] is None
    assert artifacts.result_key("M1", windowed)["network"]["converge_below"] == 0.9999
    stopped = artifacts.trained_network("M1", windowed)
    capped = artifacts.trained_network("M1", windowed, to_cap=True)
    assert stopped.stages["lbfgs"].stop == "window" and capped.stages["lbfgs"].iterations == 200
    _, on_stopped = artifacts.adversarial_set("M1", "test", windowed)
    _, on_capped = artifacts.adversarial_set("M1", "test", windowed, to_cap=True)
    assert not torch.equal(on_stopped.adversarial, on_capped.adversarial)  # the search ran on each network
    assert artifacts.trained_models(["M1"], windowed, to_cap=True)["M1"](on_capped.adversarial).argmax(1).tolist() \
        == artifacts.attacked_images("test", windowed).targets.tolist()
