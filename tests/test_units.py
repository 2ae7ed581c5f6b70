import pandas as pd
import pytest
import torch
from torch import nn

from intriguing import units


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(4, 3)
        self.out = nn.Linear(3, 2)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x.flatten(1))))


def test_activations_read_the_input_of_the_last_linear_layer():
    model = TwoLayer()
    x = torch.rand(5, 1, 2, 2)
    phi = units.activations(model, x, batch_size=2)
    assert units.last_linear_layer(model) == "out"
    assert torch.allclose(phi, torch.relu(model.hidden(x.flatten(1))))
    with pytest.raises(ValueError, match="unknown layer 'nope'"):
        units.activations(model, x, layer="nope")


def test_top_images_ranks_along_units_and_any_direction():
    phi = torch.tensor([[1.5, 0.0], [0.0, 2.0], [3.0, 0.0], [1.0, 1.0]])
    top = units.top_images(phi, units.unit_directions(2), k=2)
    assert top.tolist() == [[2, 0], [1, 3]]
    diagonal = torch.tensor([[1.0, 1.0]]) / 2 ** 0.5
    assert units.top_images(phi, diagonal, k=1).tolist() == [[2]]  # 3/√2 beats 2/√2
    with pytest.raises(ValueError, match="share D"):
        units.top_images(phi, torch.ones(1, 3), k=1)
    with pytest.raises(ValueError, match="k must be"):
        units.top_images(phi, diagonal, k=5)


def test_random_directions_are_seeded_unit_vectors():
    v = units.random_directions(7, 5, seed=3)
    assert v.shape == (5, 7) and torch.allclose(v.norm(dim=1), torch.ones(5))
    assert torch.equal(v, units.random_directions(7, 5, seed=3))


def test_coherence_scores_known_sets():
    labels = torch.tensor([0, 0, 0, 1])
    features = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    scores = units.coherence(torch.tensor([[0, 1], [0, 3], [0, 1, 2, 3][:2]]), labels, features)
    assert scores["label purity"].tolist() == [1.0, 0.5, 1.0]
    assert scores["mean cosine"].tolist() == pytest.approx([1.0, 0.0, 1.0])
    triple = units.coherence(torch.tensor([[0, 1, 2]]), labels, features)
    assert triple["label purity"].item() == pytest.approx(1.0)
    assert triple["mean cosine"].item() == pytest.approx(1 / 3)  # pairs: (0,1)=1, (0,2)=0, (1,2)=0
    with pytest.raises(ValueError, match="at least two"):
        units.coherence(torch.tensor([[0]]), labels, features)


def test_unit_vs_random_detects_a_representation_whose_units_are_classes():
    # Each unit fires for one label only: its top sets are pure, random directions mix labels.
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(10).repeat(50)
    phi = torch.nn.functional.one_hot(labels, 10).float() + torch.rand(500, 10, generator=gen)
    result = units.unit_vs_random(phi, labels, phi, k=10)
    row = result.summary.loc["label purity"]
    assert row["mean, units"] == 1.0 and row["mean, random"] < 1.0
    assert row["p-value"] < 1e-3 and row["P(units > random)"] > 0.5


def test_compare_scores_of_identical_samples_shows_no_difference():
    a = pd.DataFrame({"s": [0.1, 0.2, 0.3, 0.4]})
    summary = units.compare_scores(a, a.copy())
    assert summary.loc["s", "p-value"] == pytest.approx(1.0) and summary.loc["s", "P(units > random)"] == 0.5
