import pandas as pd
import pytest
import torch
from torch import nn

from intriguing import paper, transfer
from intriguing.attacks import rms_distortion

TABLE2_SETS = {name: name for name in paper.TABLE1.index}
TABLE2_NOISE = ["Gaussian noise, stddev=0.1", "Gaussian noise, stddev=0.3"]
TABLE4_PLAIN = {name: f"Distorted for {name}" for name in paper.TABLE3.index}
TABLE4_AMPLIFIED = {name: f"Distorted for {name}, amplified" for name in paper.TABLE3.index}


class MeanThreshold(nn.Module):
    """Class 1 when the mean pixel exceeds ``threshold``, else class 0."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, images):
        score = images.flatten(1).mean(1) - self.threshold
        return torch.stack([-score, score] + [torch.full_like(score, -1e9)] * 8, 1)


def test_error_matrix_counts_errors_per_network_and_set():
    originals = torch.full((4, 1, 28, 28), 0.2)
    labels = torch.tensor([0, 0, 0, 0])
    brighter = originals.clone()
    brighter[:2] += 0.2  # two images reach mean 0.4
    sets = {"bright": transfer.DistortedSet.from_images(brighter, originals, labels)}
    matrix = transfer.error_matrix({"t=0.3": MeanThreshold(0.3), "t=0.5": MeanThreshold(0.5)}, sets)
    assert matrix.loc["bright", "t=0.3"] == 50 and matrix.loc["bright", "t=0.5"] == 0
    assert matrix.loc["bright", "Av. distortion"] == pytest.approx(0.1)  # RMS 0.2 on half the images


def test_distorted_set_knows_whether_it_left_the_box():
    originals = torch.full((3, 1, 28, 28), 0.5)
    assert transfer.DistortedSet.from_images(originals + 0.1, originals, torch.zeros(3, dtype=torch.long)).in_box
    noisy = transfer.noise_set(originals, torch.zeros(3, dtype=torch.long), stddev=1.0)
    assert not noisy.in_box and noisy.distortion == pytest.approx(1.0, rel=0.05)
    with pytest.raises(ValueError, match="differ in shape"):
        transfer.DistortedSet.from_images(originals[:2], originals, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must have shape"):
        transfer.DistortedSet.from_images(originals, originals, torch.zeros(2, dtype=torch.long))


def test_amplify_scales_the_set_to_its_average_distortion_along_each_direction():
    originals = torch.full((3, 1, 28, 28), 0.5)
    steps = torch.tensor([0.02, 0.04, 0.0]).view(-1, 1, 1, 1)
    adversarial = originals + steps
    amplified = transfer.amplify(originals, adversarial, 0.1)
    assert rms_distortion(amplified, originals).mean().item() == pytest.approx(0.1)
    # one factor for the whole set: 0.1 / mean(0.02, 0.04, 0) = 5
    assert torch.allclose(amplified - originals, 5 * steps.expand_as(originals))


def test_amplify_per_example_normalises_each_perturbation_and_keeps_unperturbed_images():
    originals = torch.full((3, 1, 28, 28), 0.5)
    adversarial = originals + torch.tensor([0.02, 0.3, 0.0]).view(-1, 1, 1, 1)
    amplified = transfer.amplify(originals, adversarial, 0.1, per_example=True)
    assert torch.allclose(rms_distortion(amplified, originals), torch.tensor([0.1, 0.1, 0.0]))
    assert amplified.max() > 0.5  # the direction is kept ...
    assert torch.equal(amplified[2], originals[2])  # ... and an unperturbed image stays


def test_amplify_rejects_bad_input():
    originals = torch.full((2, 1, 28, 28), 0.5)
    with pytest.raises(ValueError, match="no perturbation"):
        transfer.amplify(originals, originals.clone())
    with pytest.raises(ValueError, match="shapes differ"):
        transfer.amplify(originals, originals[:1])
    with pytest.raises(ValueError, match=r"pixels in \[0, 1\]"):
        transfer.amplify(originals, originals + 0.6)


def test_noise_margins_of_the_papers_table2():
    margins = transfer.noise_margins(paper.TABLE2, TABLE2_SETS, TABLE2_NOISE)
    assert len(margins) == 6 * 5  # every off-diagonal cell
    # N100-100-10's set (0.058) is compared with noise of stddev 0.1; softmax3's (0.14) with 0.3.
    assert margins.loc[("N100-100-10", "softmax3"), "margin"] == pytest.approx(21.1 - 18.3)
    assert margins.loc[("softmax3", "softmax1"), "noise"] == "Gaussian noise, stddev=0.3"
    assert (margins["margin"] > 0).all()  # the claim holds on the paper's own numbers


def test_noise_margins_needs_noise_at_least_as_strong():
    table = paper.TABLE2.drop(index="Gaussian noise, stddev=0.3")
    with pytest.raises(ValueError, match="'softmax3' .* more distorted than every noise row"):
        transfer.noise_margins(table, TABLE2_SETS, TABLE2_NOISE[:1])


def test_amplification_gain_and_training_set_gap_of_the_papers_table4():
    gain = transfer.amplification_gain(
        paper.TABLE4, {name: (TABLE4_PLAIN[name], TABLE4_AMPLIFIED[name]) for name in paper.TABLE3.index})
    assert list(gain.index) == ["M1", "M1'", "M2"]
    assert gain.loc["M1", "M1'"] == pytest.approx(98 - 26.2)
    assert gain.loc["M2", "M2"] == 0
    gap = transfer.training_set_gap(paper.TABLE4, TABLE4_PLAIN, ("M1", "M1'"), "M2")
    assert gap["M1"] == pytest.approx(26.2 - 5.9) and gap["M1'"] == pytest.approx(6.25 - 5.1)
    amplified = transfer.training_set_gap(paper.TABLE4, TABLE4_AMPLIFIED, ("M1", "M1'"), "M2")
    assert amplified["M1'"] == pytest.approx(96 - 22)


def test_gaussian_noise_is_seeded_and_unclipped_unless_asked():
    images = torch.full((200, 1, 28, 28), 0.5)
    noisy = transfer.gaussian_noise(images, 0.3, seed=0)
    assert torch.equal(noisy, transfer.gaussian_noise(images, 0.3, seed=0))
    assert (noisy - images).pow(2).mean().sqrt().item() == pytest.approx(0.3, rel=0.01)  # stddev = RMS
    clipped = transfer.gaussian_noise(images, 1.0, seed=0, clip=True)
    assert clipped.min() == 0 and clipped.max() == 1
    with pytest.raises(ValueError, match="stddev must be non-negative"):
        transfer.gaussian_noise(images, -0.1)


def test_a_margin_fails_only_below_its_sampling_noise():
    from intriguing.transfer import below_noise, margin_standard_error

    found = pd.DataFrame({"error": [20.0, 10.0, 50.0], "noise error": [20.6, 5.0, 60.0],
                          "margin": [-0.6, 5.0, -10.0]}, index=["within noise", "positive", "worse"])
    se = margin_standard_error(found, 500)  # √((20·80 + 20.6·79.4) / 500) = 2.54 pp for the first
    assert se["within noise"] == pytest.approx(((20 * 80 + 20.6 * 79.4) / 500) ** 0.5)
    assert list(below_noise(found, 500).index) == ["worse"]  # −10 < −2 × 3.1
    assert list(below_noise(found, 1_000_000).index) == ["within noise", "worse"]  # a million images: 0.6 pp is real
    with pytest.raises(ValueError, match="at least one image"):
        margin_standard_error(found, 0)


def test_perturbation_cosines_by_hand():
    originals = torch.full((4, 1, 28, 28), 0.5)
    up = originals.clone()
    up[:, 0, 0, 0] += 0.1
    right = originals.clone()
    right[:, 0, 0, 1] -= 0.2
    both = originals.clone()
    both[:, 0, 0, :2] += torch.tensor([0.3, 0.3])
    first = torch.stack([up[0], up[1], up[2], originals[3]])
    second = torch.stack([up[0] + 0.05 * (up[0] - originals[0]), right[1], both[2], up[3]])
    cos = transfer.perturbation_cosines(originals, first, second)
    assert cos[:3].tolist() == pytest.approx([1.0, 0.0, 2 ** -0.5])
    assert torch.isnan(cos[3])  # an image left as it was has no direction
    assert transfer.perturbation_cosines(originals, first, 2 * originals - first)[:3].tolist() == pytest.approx([-1.0] * 3)
    with pytest.raises(ValueError, match="differ in shape"):
        transfer.perturbation_cosines(originals, first[:2], second)
    with pytest.raises(ValueError, match="NaN"):
        transfer.perturbation_cosines(originals, first, torch.full_like(first, float("nan")))


def test_random_box_directions_only_point_into_the_box_and_are_seeded():
    originals = torch.rand(6, 1, 28, 28)
    originals[:, :, :10] = 0.0
    originals[:, :, 20:] = 1.0
    direction = transfer.random_box_directions(originals, seed=3)
    assert (direction[:, :, :10] >= 0).all() and (direction[:, :, 20:] <= 0).all()
    middle = direction[:, :, 10:20]
    assert (middle > 0).any() and (middle < 0).any()  # free pixels keep both signs
    assert torch.equal(direction, transfer.random_box_directions(originals, seed=3))
    assert not torch.equal(direction, transfer.random_box_directions(originals, seed=4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        transfer.random_box_directions(originals + 1)
