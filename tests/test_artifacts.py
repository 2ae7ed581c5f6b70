import pytest
import torch

from intriguing import artifacts


def test_adversarial_sets_are_built_in_cached_pieces(monkeypatch, tiny):
    monkeypatch.setattr(artifacts, "ATTACK_CHUNK", 5)
    images, result = artifacts.adversarial_set("softmax1", "train", tiny)
    assert len(images) == len(result.success) == 12
    assert result.success.all()
    assert (images.targets != images.labels).all()
    # A killed run keeps its finished pieces: the second call attacks nothing.
    monkeypatch.setattr(artifacts, "min_distortion_attack", lambda *a, **k: pytest.fail("attacked again"))
    _, again = artifacts.adversarial_set("softmax1", "train", tiny)
    assert torch.equal(again.adversarial, result.adversarial)

    # The first 7 images are the whole set's first two pieces, read from the cache.
    head_images, head = artifacts.adversarial_set("softmax1", "train", tiny, examples=7)
    assert len(head_images) == len(head.success) == 7
    assert torch.equal(head.adversarial, result.adversarial[:7]) and torch.equal(head_images.images, images.images[:7])
    with pytest.raises(ValueError, match="examples must be at least 1"):
        artifacts.adversarial_set("softmax1", "train", tiny, examples=0)


def test_pieces_attacked_together_are_stored_as_if_attacked_alone(monkeypatch, tiny, isolated_cache):
    monkeypatch.setattr(artifacts, "ATTACK_CHUNK", 5)
    calls = []
    attack = artifacts.min_distortion_attack

    def counted(model, images, *args, **kwargs):
        calls.append(len(images))
        return attack(model, images, *args, **kwargs)

    monkeypatch.setattr(artifacts, "min_distortion_attack", counted)
    monkeypatch.setattr(artifacts, "default_batch_size", lambda dev: 5)  # one piece per search
    _, alone = artifacts.adversarial_set("softmax1", "train", tiny)
    assert calls == [5, 5, 2]
    stored = sorted(p.name for p in (isolated_cache / "attacks").glob("*.pt"))
    for p in (isolated_cache / "attacks").glob("*.pt"):
        p.unlink()
    calls.clear()
    monkeypatch.setattr(artifacts, "default_batch_size", lambda dev: 1000)  # every piece in one search
    _, together = artifacts.adversarial_set("softmax1", "train", tiny)
    assert calls == [12]
    assert sorted(p.name for p in (isolated_cache / "attacks").glob("*.pt")) == stored  # the same three files
    assert torch.allclose(together.distortion, alone.distortion, rtol=1e-3)  # float rounding differs with the batch
    assert torch.equal(together.success, alone.success)


def test_the_target_seed_selects_the_targets_and_the_cached_result(tiny):
    first, result = artifacts.adversarial_set("softmax1", "test", tiny, target_seed=0)
    second, other = artifacts.adversarial_set("softmax1", "test", tiny, target_seed=1)
    assert torch.equal(first.images, second.images) and not torch.equal(first.targets, second.targets)
    assert not torch.equal(result.adversarial, other.adversarial)
    key = artifacts.result_key("softmax1", tiny, target_seed=0)
    assert key != artifacts.result_key("softmax1", tiny, target_seed=1)
    assert key["network"]["spec"]["seed"] == 0


def test_min_over_targets_is_no_larger_than_random_targets_and_keeps_the_closest(tiny):
    _, random = artifacts.adversarial_set("softmax2", "train", tiny)
    images, minimum = artifacts.min_over_targets("softmax2", tiny)
    assert minimum.success.all() and len(minimum.success) == len(images) == 4
    assert (minimum.distortion <= random.distortion[:4] + 1e-6).all()
    model = artifacts.trained_network("softmax2", tiny).model
    for shift in (1, 5, 9):  # each target's own search is never closer than the minimum kept
        one = artifacts.min_distortion_attack(model, images.images, (images.labels + shift) % 10, settings=tiny.search,
                                              progress=False)
        assert (minimum.distortion <= one.distortion + 1e-6)[one.success].all()


def test_unknown_split(tiny):
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        artifacts.attacked_images("valid", tiny)


def test_result_key_of_a_loaded_network_names_its_weights(tiny):
    key = artifacts.result_key("efficientnet-lite0", tiny, settings=tiny.imagenet_search)
    assert key["network"]["weights"] == artifacts.OTHER_NETWORKS["efficientnet-lite0"]["weights"]
    assert key["search"]["c_steps"] == 1


def test_random_and_nearest_share_their_images_and_refuse_a_failed_attack(tiny, monkeypatch):
    images, results = artifacts.random_and_nearest("softmax2", "train", tiny)
    assert list(results) == list(artifacts.TARGET_CHOICES) and len(images) == tiny.min_target_examples
    assert (results["nearest target"].distortion <= results["random target"].distortion + 1e-6).all()
    failed = artifacts.AttackResult(*(v.clone() for v in (results["nearest target"].adversarial,
                                                          torch.zeros(len(images), dtype=torch.bool),
                                                          results["nearest target"].distortion,
                                                          results["nearest target"].c)))
    monkeypatch.setattr(artifacts, "min_over_targets", lambda *a, **k: (images, failed))
    with pytest.raises(RuntimeError, match="the nearest target attack on softmax2 failed on 4 images"):
        artifacts.random_and_nearest("softmax2", "train", tiny)


def test_an_adversarially_trained_network_of_this_code_is_asked_for_and_one_of_another_format_is_not(tiny):
    from intriguing.adversarial_training import RECORD_FORMAT, AdversarialTrainingSettings

    key = {"format": RECORD_FORMAT, "hidden": (100, 100), "weight_decay": (1e-4,) * 3,
           "settings": AdversarialTrainingSettings().key(), "seed": 0, "train_subset": tiny.train_subset}
    assert artifacts.asked_for("adversarial-training", "weight_decay-seed0", key, tiny)
    assert not artifacts.asked_for("adversarial-training", "weight_decay-seed0", {**key, "format": RECORD_FORMAT - 1}, tiny)
    assert not artifacts.asked_for("adversarial-training", "weight_decay-seed0", {**key, "train_subset": 123}, tiny)


def test_an_adversarial_sets_distortions_are_cached_apart_from_its_images_and_derived_unrecorded(
        tiny, tmp_path, monkeypatch):
    from intriguing import artifacts, cache

    needs = tmp_path / "needs.jsonl"
    monkeypatch.setenv(cache.NEEDS_VAR, str(needs))
    _, distortions = artifacts.adversarial_set("softmax1", "train", tiny, images=False)
    import json

    asked = [json.loads(line)["file"] for line in needs.read_text().splitlines()]
    assert len(asked) == 1 and asked[0].startswith("softmax1-train-0-distortions-")  # not the pieces it came from
    _, whole = artifacts.adversarial_set("softmax1", "train", tiny)
    assert distortions.adversarial.shape == (0,) and whole.adversarial.shape == (len(whole.success), 1, 28, 28)
    for key in ("success", "distortion", "c"):
        assert torch.equal(getattr(distortions, key), getattr(whole, key))
    monkeypatch.setenv(cache.NO_COMPUTE_VAR, "1")  # both are served from the cache now
    _, first = artifacts.adversarial_set("softmax1", "train", tiny, examples=3, images=False)
    assert torch.equal(first.distortion, whole.distortion[:3])
