import pytest
import torch
from torch import nn

from intriguing.data import Split
from intriguing.evaluate import error_rate, error_table, misclassified, predict
from intriguing.profiles import PROFILES, get_profile


class AlwaysZero(nn.Module):
    def forward(self, x):
        logits = torch.zeros(len(x), 10)
        logits[:, 0] = 1
        return logits


def test_error_rate_of_a_constant_classifier():
    labels = torch.tensor([0, 0, 1, 2, 0, 3, 0, 0])
    data = Split(torch.rand(8, 1, 28, 28), labels)
    assert error_rate(AlwaysZero(), data) == pytest.approx(3 / 8)
    assert misclassified(AlwaysZero(), data).tolist() == [False, False, True, True, False, True, False, False]
    table = error_table({"zero": AlwaysZero()}, {"all": data, "zeros": data.subset(labels == 0)})
    assert table.loc["zero", "all"] == pytest.approx(37.5) and table.loc["zero", "zeros"] == 0


class CountsBatches(AlwaysZero):
    eval_batch_size = 7

    def __init__(self):
        super().__init__()
        self.sizes = []

    def forward(self, x):
        self.sizes.append(len(x))
        return super().forward(x)


def test_predict_takes_the_models_own_batch_size_unless_told():
    model = CountsBatches()
    predict(model, torch.rand(16, 1, 28, 28))
    assert model.sizes == [7, 7, 2]
    model.sizes.clear()
    predict(model, torch.rand(16, 1, 28, 28), batch_size=10)
    assert model.sizes == [10, 6]


def test_predict_batches_and_validates():
    assert predict(AlwaysZero(), torch.rand(25, 1, 28, 28), batch_size=4).tolist() == [0] * 25
    with pytest.raises(ValueError, match=r"pixels in \[0, 1\]"):
        predict(AlwaysZero(), torch.rand(2, 1, 28, 28) * 2)
    outside = torch.rand(3, 1, 28, 28) * 3 - 1
    assert predict(AlwaysZero(), outside, in_box=False).tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="empty set"):
        error_rate(AlwaysZero(), Split(torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long)))


def test_profiles_by_name_and_environment(monkeypatch):
    monkeypatch.delenv("INTRIGUING_PROFILE", raising=False)
    assert get_profile().name == "full"
    monkeypatch.setenv("INTRIGUING_PROFILE", "smoke")
    assert get_profile().name == "smoke"
    assert get_profile("full").name == "full"
    monkeypatch.setenv("INTRIGUING_PROFILE", "fast")
    with pytest.raises(ValueError, match="unknown profile 'fast'; choose one of \\['full', 'smoke'\\]"):
        get_profile()


def test_full_profile_is_the_papers_scale():
    full, smoke = PROFILES["full"], PROFILES["smoke"]
    assert full.train_subset is None and full.error_tolerance_pp == 1.5
    assert all(smoke.lbfgs_iterations[k] < full.lbfgs_iterations[k] for k in full.lbfgs_iterations)


def test_replicates_are_positive_and_shared_by_the_p1_p2_networks():
    from dataclasses import replace

    from intriguing import artifacts

    full = PROFILES["full"]
    assert all(full.replicates[name] >= 3 for name in ("M1", "M1'", "M2", "softmax1", "N100-100-10"))
    assert list(artifacts.replicates("softmax2", "smoke")) == [0] and list(artifacts.replicates("M1", "smoke")) == [0, 1]
    with pytest.raises(ValueError, match="positive integer"):
        replace(full, replicates={"softmax1": 0})
    with pytest.raises(ValueError, match="share each replicate's P1/P2 split"):
        replace(full, replicates={"M1": 3, "M1'": 2, "M2": 3})
    with pytest.raises(ValueError, match="unknown network 'nonesuch'"):
        artifacts.replicates("nonesuch", full)


def test_every_printed_settings_line_fits_the_page():
    """The chapters print these; a line wider than a code cell (88 characters) runs off the rendered page."""
    from intriguing.chapters.adversarial_training import POOL_READINGS, Choices, variant_settings

    for name in PROFILES:
        profile = get_profile(name)
        recipe = max(profile.adversarial_recipes, key=lambda r: len(r.describe()))
        printed = [profile.describe(), profile.search.describe(), profile.imagenet_search.describe()]
        for reading in POOL_READINGS:
            choices = Choices(recipe=recipe, first_recipe=recipe, dropout=(0.2, 0.5), epsilon=0.1, reading=reading)
            printed.append(variant_settings("pools, best reading", profile, choices).describe())
        lines = [line for text in printed for line in text.splitlines()]
        assert len(lines) > 8 and max(map(len, lines)) <= 88, max(lines, key=len)
