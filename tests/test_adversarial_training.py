"""Adversarial training's primitives on tiny sigmoid networks: answers known by construction."""

import functools
import math

import pytest
import torch

from intriguing.adversarial_training import (
    AdversarialPool,
    AdversarialTrainingSettings,
    NetworkAbove,
    StackedNetworkAbove,
    StackedSigmoidMLP,
    adversarial_fit,
    adversarial_fit_many,
    fast_gradient_sign,
    layer_adversarial,
    layer_output,
    pool_verdicts,
    refresh_record,
    refresh_stack,
    resize_perturbations,
    runner_up_targets,
)
from intriguing.attacks import AttackResult, SearchSettings, random_targets
from intriguing.data import Split, load_mnist
from intriguing.models import SigmoidMLP

SEARCH = SearchSettings(c_steps=6, max_iter=30)


@functools.cache
def trained_small_network() -> SigmoidMLP:
    """784-16-12-10, trained for seconds on 500 MNIST images: sharp enough that targets are reachable."""
    torch.manual_seed(0)
    model = SigmoidMLP((16, 12))
    data = load_mnist("test").subset(slice(0, 500))
    adversarial_fit(model, data, AdversarialTrainingSettings(epochs=15, pool_start=0, batch_size=50, lr=1e-2),
                    weight_decay=(0.0,) * 3, seed=0, progress=False)
    return model


def sharp_network() -> SigmoidMLP:
    model = SigmoidMLP((16, 12))
    model.load_state_dict(trained_small_network().state_dict())
    return model.eval()


def images_and_labels(n: int, seed: int = 0) -> Split:
    gen = torch.Generator().manual_seed(seed)
    return Split(torch.rand(n, 1, 28, 28, generator=gen), torch.randint(0, 10, (n,), generator=gen))


@pytest.mark.parametrize("k, width", [(0, 784), (1, 16), (2, 12)])
def test_a_layer_k_adversarial_stays_in_the_box_and_the_layers_above_call_it_its_target(k, width):
    model = sharp_network()
    images = load_mnist("test").images[500:512]
    labels = model(images).argmax(1)
    targets = random_targets(labels, seed=3)
    adversarial, result = layer_adversarial(model, images, targets, k, labels=labels, settings=SEARCH)
    model.cpu()  # the search ran it on the library's device
    assert adversarial.shape == (12, width)
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert result.success.float().mean() >= 0.9
    called = NetworkAbove(model, k)(adversarial).argmax(1)
    assert (called[result.success] == targets[result.success]).all()
    clean = layer_output(model, images, k)
    assert (result.distortion[result.success] > 0).all() and not torch.equal(adversarial, clean)


def test_a_layer_k_example_does_not_depend_on_its_batch():
    model = sharp_network()
    images = images_and_labels(6).images
    targets = random_targets(model(images).argmax(1), seed=1)
    together, _ = layer_adversarial(model, images, targets, 1, settings=SEARCH)
    alone = torch.cat([layer_adversarial(model, images[i:i + 1], targets[i:i + 1], 1, settings=SEARCH)[0]
                       for i in range(6)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_a_refresh_replaces_the_stated_share_of_each_pool():
    model, data = sharp_network(), images_and_labels(50)
    pool, gen = AdversarialPool((0, 2), size=40), torch.Generator().manual_seed(0)
    made = pool.refresh(model, data, 0.25, gen, SEARCH)
    assert {k: r["replaced"] for k, r in made.items()} == {0: 40, 2: 40}  # an empty pool is filled
    before = {k: pool.inputs[k].clone() for k in (0, 2)}
    made = pool.refresh(model, data, 0.25, gen, SEARCH)
    assert {k: r["replaced"] for k, r in made.items()} == {0: 10, 2: 10}
    assert all(0 <= r["success"] <= 1 and r["median distortion"] <= r["p90 distortion"] for r in made.values())
    for k in (0, 2):
        changed = (pool.inputs[k] != before[k]).any(1).sum().item()
        assert 1 <= changed <= 10  # a new example can land in a slot twice, and rarely equal the old one
    h, y = pool.sample(2, 7, gen)
    assert h.shape == (7, 12) and y.shape == (7,)


def test_with_no_pooled_examples_the_training_is_plain_training():
    data = images_and_labels(64)
    plain_model, pooled_model = SigmoidMLP((8, 8)), SigmoidMLP((8, 8))
    pooled_model.load_state_dict(plain_model.state_dict())
    base = {"epochs": 2, "pool_start": 0, "batch_size": 16, "search": SEARCH}
    plain = adversarial_fit(plain_model, data, AdversarialTrainingSettings(**base), weight_decay=(1e-5,) * 3,
                            seed=4, progress=False)
    pooled = adversarial_fit(pooled_model, data, AdversarialTrainingSettings(pool_layers=(0, 1), mix=0, **base),
                             weight_decay=(1e-5,) * 3, seed=4, progress=False)
    assert pooled.refreshes == 0 and plain.train_loss == pooled.train_loss
    for p, q in zip(plain_model.parameters(), pooled_model.parameters()):
        assert torch.equal(p, q)


def test_pooled_training_refreshes_and_lowers_its_loss():
    data = images_and_labels(96)
    model = SigmoidMLP((8, 8))
    settings = AdversarialTrainingSettings(pool_layers=(1, 2), pool_size=16, refresh_every=3, epochs=3, pool_start=1,
                                           batch_size=32, lr=1e-2, search=SearchSettings(c_steps=2, max_iter=5))
    curve = adversarial_fit(model, data, settings, weight_decay=(0.0,) * 3, seed=0, evaluation=data, progress=False)
    # Steps 3, 4, 5 (epoch 2) and 6, 7, 8 (epoch 3): the pools start at step 3 and refresh at 3 and 6.
    assert curve.refreshes == 2 and curve.epochs == [1, 2, 3] and len(curve.test_error) == 3
    assert [(r["step"], r["epoch"], r["layer"], r["replaced"]) for r in curve.refresh_log] == [
        (3, 1, 1, 16), (3, 1, 2, 16), (6, 2, 1, 2), (6, 2, 2, 2)]
    assert curve.train_loss[-1] < curve.train_loss[0]


@pytest.mark.parametrize("change, message", [
    ({"pool_layers": (1, 1)}, "pool_layers must be distinct"),
    ({"refresh_share": 0.0}, "refresh_share must lie in"),
    ({"epochs": 0}, "epochs must be at least 1"),
    ({"dropout_hidden": 1.0}, "dropout_hidden must lie in"),
    ({"epochs": 4, "pool_start": 4}, "pool_start must lie in"),
])
def test_bad_settings_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        AdversarialTrainingSettings(**change)


def test_a_layer_the_network_lacks_is_named():
    with pytest.raises(ValueError, match="layer 3 does not exist: the network has the input .0. and 2 hidden"):
        NetworkAbove(sharp_network(), 3)


@pytest.mark.parametrize("changes, message", [
    ({"pool_layers": (0, 1, 2), "mix": 0.005}, "mix 0.005 gives no pooled example per minibatch"),
    ({"lr": float("inf")}, "lr must be a finite positive number"),
    ({"lr": float("nan")}, "lr must be a finite positive number"),
    ({"mix": float("nan")}, "mix must be a finite non-negative number"),
    ({"epochs": 2.5}, "epochs must be an integer"),
])
def test_settings_that_would_train_silently_wrong_are_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        AdversarialTrainingSettings(**changes)


def test_adversarial_fit_rejects_bad_data_and_weight_decay_and_stops_at_a_non_finite_loss():
    data = images_and_labels(200)
    settings = AdversarialTrainingSettings(epochs=1, pool_start=0, batch_size=50)
    fit = functools.partial(adversarial_fit, seed=0, progress=False)
    with pytest.raises(ValueError, match="200 images but labels of shape"):
        fit(SigmoidMLP((4,)), Split(data.images, data.labels[:100]), settings, weight_decay=(0.0, 0.0))
    with pytest.raises(ValueError, match="NaN or infinite pixels"):
        fit(SigmoidMLP((4,)), Split(data.images * float("nan"), data.labels), settings, weight_decay=(0.0, 0.0))
    with pytest.raises(ValueError, match="weight decay must be finite and non-negative"):
        fit(SigmoidMLP((4,)), data, settings, weight_decay=(float("nan"), 0.0))
    with pytest.raises(FloatingPointError, match=r"the loss is not finite at minibatch step \d+ \(epoch 1\)"):
        fit(SigmoidMLP((4,)), data, AdversarialTrainingSettings(epochs=1, pool_start=0, batch_size=50, lr=1e30),
            weight_decay=(1e30, 1e30))


def test_the_refresh_record_counts_a_hand_made_search():
    distortion = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    success = distortion > 0  # the search reports distortion 0 where it failed
    result = AttackResult(adversarial=torch.zeros(11, 1, 1, 4), success=success, distortion=distortion,
                          c=success.float())
    record = refresh_record(result)
    assert record["replaced"] == 11 and record["success"] == pytest.approx(10 / 11)
    assert record["median distortion"] == pytest.approx(0.55) and record["p90 distortion"] == pytest.approx(0.91)
    none = refresh_record(AttackResult(result.adversarial, torch.zeros(11, dtype=torch.bool), torch.zeros(11),
                                       torch.zeros(11)))
    assert none["success"] == 0 and none["median distortion"] != none["median distortion"]  # NaN: nothing found


def test_a_fast_gradient_sign_example_lies_in_the_epsilon_ball_and_the_box_and_raises_the_loss():
    model, data = sharp_network(), load_mnist("test").subset(slice(0, 64))
    x = data.images
    for epsilon in (0.0, 0.05, 0.3):
        adversarial = fast_gradient_sign(model, x, data.labels, epsilon)
        assert adversarial.shape == x.shape and not adversarial.requires_grad
        assert (adversarial - x).abs().max() <= epsilon + 1e-7
        assert adversarial.min() >= 0 and adversarial.max() <= 1
    loss = torch.nn.functional.cross_entropy
    assert loss(model(adversarial), data.labels) > loss(model(x), data.labels)  # one signed step uphill
    with pytest.raises(ValueError, match=r"labels of shape \(3,\) for logits of shape \(64, 10\)"):
        fast_gradient_sign(model, x, data.labels[:3], 0.1)


def test_fast_gradient_sign_training_is_a_control_without_pools_and_differs_from_plain_training():
    data = images_and_labels(64)
    models = [SigmoidMLP((8, 8)) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    base = {"epochs": 2, "pool_start": 0, "batch_size": 16, "lr": 1e-2}
    for model, epsilon in zip(models, (0.0, 0.1)):
        adversarial_fit(model, data, AdversarialTrainingSettings(fgsm_epsilon=epsilon, **base),
                        weight_decay=(0.0,) * 3, seed=1, progress=False)
    assert not torch.equal(models[0].layers[0].weight, models[1].layers[0].weight)
    assert "fgsm_epsilon" not in AdversarialTrainingSettings().key()  # the cache keys of the book's variants stay
    assert AdversarialTrainingSettings(fgsm_epsilon=0.1).key()["fgsm_epsilon"] == 0.1
    with pytest.raises(ValueError, match="the pools' control: give it no pool_layers"):
        AdversarialTrainingSettings(fgsm_epsilon=0.1, pool_layers=(0,))
    with pytest.raises(ValueError, match="fgsm_epsilon must lie in"):
        AdversarialTrainingSettings(fgsm_epsilon=2.0)


@pytest.mark.parametrize("changes", [
    {},
    {"dropout_input": 0.2, "dropout_hidden": 0.3},
    {"pool_layers": (0, 2), "pool_size": 12, "refresh_every": 2, "search": SearchSettings(c_steps=2, max_iter=5)},
    {"fgsm_epsilon": 0.1},
    {"pool_layers": (0, 1, 2), "pool_size": 12, "refresh_every": 2, "search": SearchSettings(c_steps=2, max_iter=5),
     "stacked_search": True},
], ids=["plain", "dropout", "pools", "fgsm", "pools searched together"])
def test_networks_trained_together_equal_the_same_networks_trained_one_by_one(changes):
    changes = dict(changes)
    stacked_search = changes.pop("stacked_search", False)
    data, seeds = images_and_labels(80), [3, 5, 8]
    settings = AdversarialTrainingSettings(epochs=3, pool_start=1, batch_size=16, lr=1e-2, **changes)
    initial = []
    for seed in seeds:
        torch.manual_seed(seed)
        initial.append(SigmoidMLP((8, 6)).state_dict())

    def fresh() -> list[SigmoidMLP]:
        models = [SigmoidMLP((8, 6)) for _ in seeds]
        for model, state in zip(models, initial):
            model.load_state_dict(state)
        return models

    alone = fresh()
    curves_alone = [adversarial_fit(model, data, settings, weight_decay=(1e-4,) * 3, seed=seed, evaluation=data,
                                    progress=False) for model, seed in zip(alone, seeds)]
    together = fresh()
    curves_together = adversarial_fit_many(together, data, settings, weight_decay=(1e-4,) * 3, seeds=seeds,
                                           evaluation=data, progress=False, stacked_search=stacked_search)
    for a, b, ca, cb in zip(alone, together, curves_alone, curves_together):
        for p, q in zip(a.parameters(), b.parameters()):
            assert torch.allclose(p, q, atol=1e-5), (p - q).abs().max()
        assert ca.train_loss == pytest.approx(cb.train_loss, rel=1e-5)
        assert ca.test_error == cb.test_error and ca.refreshes == cb.refreshes
        assert [r["replaced"] for r in ca.refresh_log] == [r["replaced"] for r in cb.refresh_log]
    assert not torch.equal(together[0].layers[0].weight, together[1].layers[0].weight)  # each its own seed


def test_a_stack_keeps_each_networks_weights_and_rejects_networks_of_other_shapes():
    models = [SigmoidMLP((8, 6)) for _ in range(3)]
    stack = StackedSigmoidMLP(models)
    assert len(stack) == 3 and stack.weights[0].shape == (3, 8, 784)
    x = torch.rand(3, 5, 1, 28, 28)
    logits = stack.forward_from(x.flatten(2), 0)
    for i, model in enumerate(models):
        assert torch.allclose(logits[i], model(x[i]), atol=1e-6)
        assert torch.equal(stack.network(i).layers[0].weight, model.layers[0].weight)
    with pytest.raises(ValueError, match="share their layer shapes"):
        StackedSigmoidMLP([SigmoidMLP((8, 6)), SigmoidMLP((8, 7))])
    with pytest.raises(ValueError, match="2 seeds for 3 networks"):
        adversarial_fit_many(models, images_and_labels(16), AdversarialTrainingSettings(epochs=1, pool_start=0),
                             weight_decay=(0.0,) * 3, seeds=[0, 1], progress=False)


def test_the_runner_up_target_is_the_highest_wrong_logit():
    model, data = sharp_network(), load_mnist("test").subset(slice(0, 40))
    targets = runner_up_targets(model, data.images, data.labels)
    logits = model(data.images).detach()
    assert (targets != data.labels).all()
    for i in range(40):
        ranked = [c for c in logits[i].argsort(descending=True).tolist() if c != data.labels[i]]
        assert targets[i] == ranked[0]


def test_perturbations_are_resized_as_asked_and_a_failed_search_stays_clean():
    clean = torch.full((3, 100), 0.5)
    delta = torch.zeros(3, 100)
    delta[0, :10] = 0.2  # RMS 0.2 * √0.1 = 0.0632
    delta[1, :10] = 0.05  # RMS 0.0158
    adversarial = clean + delta  # example 2: no perturbation (a failed search)
    rms = lambda x: (x - clean).pow(2).mean(1).sqrt()  # noqa: E731
    fixed = resize_perturbations(clean, adversarial, "fixed", 0.03)
    assert rms(fixed)[:2].tolist() == pytest.approx([0.03, 0.03]) and torch.equal(fixed[2], clean[2])
    capped = resize_perturbations(clean, adversarial, "cap", 0.03)
    assert rms(capped).tolist() == pytest.approx([0.03, 0.0158, 0.0], abs=1e-4)
    assert torch.equal(capped[1], adversarial[1])  # smaller than the cap: as found
    assert resize_perturbations(clean, adversarial, "fixed", 5.0).max() <= 1  # clipped to the box
    with pytest.raises(ValueError, match="unknown scaling"):
        resize_perturbations(clean, adversarial, "as found", 0.03)


def test_a_refresh_with_runner_up_targets_and_fixed_size_fills_the_pool_at_that_size():
    model, data = sharp_network(), load_mnist("test").subset(slice(0, 30))
    pool, gen = AdversarialPool((1,), size=30), torch.Generator().manual_seed(0)
    made = pool.refresh(model, data, 1.0, gen, SEARCH, target="runner-up", scaling="fixed", distortion=0.02)
    assert made[1]["replaced"] == 30 and made[1]["success"] == 1  # found at a median RMS of 0.18, then rescaled
    clean = layer_output(model.cpu(), data.images, 1).detach()  # the search ran it on the library's device
    nearest = torch.cdist(pool.inputs[1].cpu(), clean).min(1).values / 16 ** 0.5  # RMS distance to the closest clean output
    assert torch.allclose(nearest, torch.full_like(nearest, 0.02), atol=1e-4)


@pytest.mark.parametrize("changes, message", [
    ({"pool_target": "nearest"}, "unknown pool_target"),
    ({"pool_scaling": "shrink"}, "unknown pool_scaling"),
    ({"pool_scaling": "cap"}, "needs a finite positive pool_distortion"),
    ({"pool_distortion": 0.1}, "needs a finite positive pool_distortion"),
    ({"optimizer": "rmsprop"}, "unknown optimizer"),
    ({"schedule": "linear"}, "unknown schedule"),
])
def test_pool_readings_are_checked(changes, message):
    with pytest.raises(ValueError, match=message):
        AdversarialTrainingSettings(**changes)
    reading = AdversarialTrainingSettings(pool_target="runner-up", pool_scaling="fixed", pool_distortion=0.1)
    assert reading.key()["pool_scaling"] == "fixed" and "pool_target" not in AdversarialTrainingSettings().key()


def test_pool_verdicts_count_a_hand_made_pool():
    class Fixed(torch.nn.Module):
        """Says label 3 for every image with a bright first pixel, else label 5."""

        def __init__(self) -> None:
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = torch.zeros(len(x), 10)
            logits[:, 5] = 1.0
            logits[x.flatten(1)[:, 0] > 0.5, 3] = 2.0
            return logits

    inputs = torch.zeros(6, 784)
    inputs[:3, 0] = 1.0  # the first three are called 3, the last three 5
    labels = torch.tensor([3, 1, 1, 5, 5, 2])
    targets = torch.tensor([4, 3, 2, 7, 1, 5])
    counts = pool_verdicts(Fixed(), {"inputs": inputs, "labels": labels, "targets": targets})
    assert counts == {"true label": 3, "target": 2, "other label": 1}  # true: 0, 3, 4; target: 1, 5; other: 2
    with pytest.raises(ValueError, match="inputs \\(n, 784\\)"):
        pool_verdicts(Fixed(), {"inputs": inputs[:, :10], "labels": labels, "targets": targets})
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        pool_verdicts(Fixed(), {"inputs": inputs + 2, "labels": labels, "targets": targets})


def test_an_input_pool_keeps_its_targets_and_training_keeps_a_sample_of_it():
    data = images_and_labels(64)
    settings = AdversarialTrainingSettings(pool_layers=(0, 1), pool_size=20, refresh_every=2, epochs=2, pool_start=0,
                                           batch_size=16, lr=1e-2, search=SearchSettings(c_steps=2, max_iter=5))
    curve = adversarial_fit(SigmoidMLP((8, 8)), data, settings, weight_decay=(0.0,) * 3, seed=0, progress=False)
    kept = curve.input_pool
    assert kept["inputs"].shape == (20, 784) and kept["labels"].shape == kept["targets"].shape == (20,)
    assert (kept["targets"] != kept["labels"]).all() and kept["inputs"].min() >= 0 and kept["inputs"].max() <= 1
    hidden_only = adversarial_fit(SigmoidMLP((8, 8)), data, AdversarialTrainingSettings(**{**settings.__dict__,
                                  "pool_layers": (1,)}), weight_decay=(0.0,) * 3, seed=0, progress=False)
    assert hidden_only.input_pool == {}


def test_sgd_with_a_cosine_schedule_trains_and_differs_from_adam():
    data = images_and_labels(64)
    losses = {}
    for optimizer, lr in (("adam", 1e-2), ("sgd", 0.5)):
        torch.manual_seed(0)
        settings = AdversarialTrainingSettings(epochs=4, pool_start=0, batch_size=16, lr=lr, optimizer=optimizer,
                                               schedule="cosine")
        losses[optimizer] = adversarial_fit(SigmoidMLP((8, 8)), data, settings, weight_decay=(0.0,) * 3, seed=0,
                                            progress=False).train_loss
    assert losses["sgd"][-1] < losses["sgd"][0] and losses["adam"][-1] < losses["adam"][0]
    assert losses["sgd"] != losses["adam"]
    assert "SGD with Nesterov momentum 0.9" in AdversarialTrainingSettings(optimizer="sgd").describe()
    assert AdversarialTrainingSettings(schedule="cosine").key()["schedule"] == "cosine"
    assert "optimizer" not in AdversarialTrainingSettings().key()  # the old recipe keeps its cache key


def test_the_stacked_network_above_gives_each_row_its_own_networks_logits():
    models = [SigmoidMLP((8, 6)) for _ in range(3)]
    stack = StackedSigmoidMLP(models)
    for k, width in ((0, 784), (1, 8), (2, 6)):
        above = StackedNetworkAbove(stack, k, per_network=4)
        h = torch.rand(12, 1, 1, width)
        rows = torch.tensor([0, 2, 3, 5, 9, 11])  # a subset, as the search's running rows are
        logits = above(h[rows], rows)
        for r, row in enumerate(rows.tolist()):
            expected = NetworkAbove(models[row // 4], k)(h[row:row + 1])
            assert torch.allclose(logits[r], expected[0], atol=1e-5)
    with pytest.raises(ValueError, match="layer 3 does not exist"):
        StackedNetworkAbove(stack, 3, per_network=4)


@pytest.mark.parametrize("scaling, per_call", [("as found", None), ("fixed", None), ("as found", 6)],
                         ids=["as found", "fixed", "in calls of 2 examples per network"])
def test_pools_searched_together_equal_pools_searched_network_by_network(scaling, per_call, monkeypatch):
    """Each network draws what it would draw alone, and its examples match to float rounding (the network in
    float64 during the search, as the book's settings have it), also when the search is split into calls."""
    if per_call:
        monkeypatch.setattr("intriguing.adversarial_training.default_batch_size", lambda dev: per_call)
    data = images_and_labels(60)
    models = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        models.append(SigmoidMLP((8, 6)))
    stack = StackedSigmoidMLP(models)
    found = {}
    for stacked in (False, True):
        pools = [AdversarialPool((0, 1, 2), size=10) for _ in models]
        generators = [torch.Generator().manual_seed(seed) for seed in (1, 2, 3)]
        records = [refresh_stack(pools, stack, data, 0.3, generators, SEARCH, scaling=scaling,
                                 distortion=0.05 if scaling == "fixed" else 0.0, stacked=stacked) for _ in range(2)]
        found[stacked] = pools, records
    (alone, records_alone), (together, records_together) = found[False], found[True]
    assert [[r["replaced"] for r in rec.values()] for rec in records_together[1]] == [[3, 3, 3]] * 3
    for a, b in zip(alone, together):  # compared on the CPU: a search moves its network to the library's device
        for k in (0, 1, 2):
            assert torch.equal(a.labels[k].cpu(), b.labels[k].cpu()) and torch.equal(a.targets[k].cpu(), b.targets[k].cpu())
            assert torch.allclose(a.inputs[k].cpu(), b.inputs[k].cpu(), atol=1e-5), (a.inputs[k].cpu() - b.inputs[k].cpu()).abs().max()
    for one, other in zip(records_alone, records_together):
        for a, b in zip(one, other):
            for k in (0, 1, 2):
                assert a[k]["success"] == b[k]["success"]
                assert a[k]["median distortion"] == pytest.approx(b[k]["median distortion"], rel=1e-4, nan_ok=True)


def test_a_rowwise_search_split_into_batches_tells_each_batch_its_rows():
    """The search hands a RowwiseModel the rows of the whole call, also when it splits the call into batches."""
    from intriguing.attacks import min_distortion_attack

    models = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        models.append(SigmoidMLP((8, 6)))
    above = StackedNetworkAbove(StackedSigmoidMLP(models), 1, per_network=4)
    h = torch.rand(12, 1, 1, 8, generator=torch.Generator().manual_seed(0))
    targets = random_targets(torch.zeros(12, dtype=torch.int64), seed=1)
    whole = min_distortion_attack(above, h, targets, settings=SEARCH, batch_size=12, progress=False)
    split = min_distortion_attack(above, h, targets, settings=SEARCH, batch_size=5, progress=False)
    assert torch.equal(whole.success, split.success)
    assert torch.allclose(whole.distortion, split.distortion, atol=1e-5)
    alone = min_distortion_attack(NetworkAbove(models[2], 1), h[8:], targets[8:], settings=SEARCH, progress=False)
    assert torch.allclose(whole.distortion[8:], alone.distortion, atol=1e-5)  # rows 8-11 are network 2's


def test_max_norm_caps_every_units_incoming_weights_and_keys_only_when_set():
    stack = StackedSigmoidMLP([SigmoidMLP((2, 2))])
    with torch.no_grad():
        stack.weights[1].copy_(torch.tensor([[[3.0, 4.0], [0.3, 0.4]]]))  # row norms 5 and 0.5
    stack.cap_norms(1.0)
    assert torch.allclose(stack.weights[1][0], torch.tensor([[0.6, 0.8], [0.3, 0.4]]))

    data = images_and_labels(64)
    model = SigmoidMLP((8, 8))
    adversarial_fit(model, data, AdversarialTrainingSettings(epochs=2, pool_start=0, batch_size=16, lr=0.5,
                                                             optimizer="sgd", max_norm=0.5),
                    weight_decay=(0.0,) * 3, seed=0, progress=False)
    for layer in model.weight_layers():
        assert layer.weight.norm(dim=1).max() <= 0.5 + 1e-5
    assert "max_norm" not in AdversarialTrainingSettings().key()  # the book's variants keep their cache keys
    assert AdversarialTrainingSettings(max_norm=3.0).key()["max_norm"] == 3.0
    assert "max-norm 3" in AdversarialTrainingSettings(max_norm=3.0).describe()
    for bad in (-1.0, math.inf):
        with pytest.raises(ValueError, match="max_norm must be a finite non-negative number"):
            AdversarialTrainingSettings(max_norm=bad)


def test_describe_names_the_pools_search_only_with_pools():
    assert "search" not in AdversarialTrainingSettings().describe()
    assert "search" not in AdversarialTrainingSettings(fgsm_epsilon=0.1).describe()
    pooled = AdversarialTrainingSettings(pool_layers=(0, 1)).describe()
    assert pooled.endswith(AdversarialTrainingSettings().search.describe())
    assert "the pools' search:" in pooled
