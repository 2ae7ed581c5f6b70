import pandas as pd
import pytest
import torch
from torch import nn

from intriguing import spectral
from intriguing.imagenet import efficientnet_lite0


def _power(w, stride, groups, n, circular):
    operator = spectral.conv_operator(w, stride, groups, "circular" if circular else "zeros")
    return spectral.power_iteration(operator, (1, w.shape[1] * groups, n, n), iterations=300)


RANDOM_LAYERS = [  # (C_in, C_out, k, stride, groups, n)
    (3, 8, 3, 1, 1, 16), (3, 8, 3, 2, 1, 16), (3, 8, 5, 4, 1, 32), (4, 16, 11, 4, 1, 32),
    (8, 8, 3, 1, 8, 16), (8, 8, 5, 2, 8, 16),
]


@pytest.mark.parametrize("c_in, c_out, k, stride, groups, n", RANDOM_LAYERS)
def test_fourier_bound_is_the_norm_of_the_circular_conv_and_bounds_the_zero_padded_one(c_in, c_out, k, stride,
                                                                                      groups, n):
    w = torch.randn(c_out, c_in // groups, k, k, dtype=torch.float64, generator=torch.Generator().manual_seed(k))
    bound = spectral.conv_frame_bounds(w, n, stride, groups).upper
    # Circular padding is the formula's own boundary condition: equal up to power iteration's accuracy
    # (which approaches the norm from below).
    assert bound * (1 - 5e-3) <= _power(w, stride, groups, n, circular=True) <= bound * (1 + 1e-6)
    # Zero padding compresses the periodic operator: never above, and within 10 % on these sizes.
    zero = _power(w, stride, groups, n, circular=False)
    assert 0.9 * bound <= zero <= bound * (1 + 1e-6)


@pytest.mark.parametrize("layer", ["stem", "depthwise_stride2", "depthwise_5x5"])
def test_fourier_bound_on_trained_efficientnet_layers(layer):
    net = efficientnet_lite0()
    conv, bn = {"stem": (net._conv_stem, net._bn0),
                "depthwise_stride2": (net._blocks[1]._depthwise_conv, net._blocks[1]._bn1),
                "depthwise_5x5": (net._blocks[4]._depthwise_conv, net._blocks[4]._bn1)}[layer]
    w = spectral.fold_batchnorm(conv.weight, bn).double()
    bound = spectral.conv_frame_bounds(w, 16, conv.stride[0], conv.groups).upper
    assert bound * (1 - 5e-3) <= _power(w, conv.stride[0], conv.groups, 16, circular=True) <= bound * (1 + 1e-6)
    assert _power(w, conv.stride[0], conv.groups, 16, circular=False) <= bound * (1 + 1e-6)


def test_a_one_pixel_kernel_is_bounded_by_its_singular_values():
    w = torch.tensor([[2.0, 0.0], [0.0, 0.5], [0.0, 0.0]]).view(3, 2, 1, 1)
    bounds = spectral.conv_frame_bounds(w, 8, stride=1)
    assert bounds.upper == pytest.approx(2.0) and bounds.lower == pytest.approx(0.5)


def test_stride_folds_aliased_frequencies_into_one_block():
    # A 2×2 box filter of stride 2 averages disjoint blocks: ‖A‖ = 2 (sum of 4 ones / √4), lower = 2.
    w = torch.ones(1, 1, 2, 2)
    bounds = spectral.conv_frame_bounds(w, 8, stride=2)
    assert bounds.upper == pytest.approx(2.0)


def test_linear_frame_bounds_are_the_extreme_singular_values():
    bounds = spectral.linear_frame_bounds(torch.diag(torch.tensor([3.0, 0.25])))
    assert (bounds.lower, bounds.upper) == pytest.approx((0.25, 3.0))
    with pytest.raises(ValueError, match=r"\(out, in\)"):
        spectral.linear_frame_bounds(torch.ones(2, 2, 2))


def test_fold_batchnorm_scales_each_output_channel():
    bn = nn.BatchNorm2d(2, eps=0.0).eval()
    bn.weight.data = torch.tensor([2.0, 1.0])
    bn.running_var = torch.tensor([4.0, 0.25])
    folded = spectral.fold_batchnorm(torch.ones(2, 1, 3, 3), bn)
    assert folded[0].unique().item() == pytest.approx(1.0) and folded[1].unique().item() == pytest.approx(2.0)


def test_conv_frame_bounds_rejects_bad_weights():
    with pytest.raises(ValueError, match="groups"):
        spectral.conv_frame_bounds(torch.ones(3, 1, 3, 3), 8, groups=2)
    with pytest.raises(ValueError, match="C_out"):
        spectral.conv_frame_bounds(torch.ones(3, 3), 8)


def test_frame_bound_table_folds_batchnorm_and_follows_execution_order():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 10)).eval()
    model[1].running_var = torch.full((4,), 4.0)
    table = spectral.frame_bound_table(model, (1, 8, 8))
    assert list(table.index) == ["0", "4"]
    assert table.loc["0", "BN folded"] and table.loc["0", "Stride"] == 2 and table.loc["0", "Input"] == 8
    unfolded = spectral.conv_frame_bounds(model[0].weight, 8, 2).upper
    assert table.loc["0", "Upper bound"] == pytest.approx(unfolded / (4 + 1e-5) ** 0.5)
    assert table.loc["4", "Size"] == "64×10"


def test_conv_operator_pads_as_asked():
    w = torch.ones(1, 1, 3, 3)
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 0] = 1.0
    assert spectral.conv_operator(w)(x)[0, 0, 3, 3] == 0  # zero padding: no wrap-around
    assert spectral.conv_operator(w, padding="circular")(x)[0, 0, 3, 3] == 1  # the corner wraps
    with pytest.raises(ValueError, match="unknown padding 'reflect'"):
        spectral.conv_operator(w, padding="reflect")


def test_largest_bounds_places_table5s_largest_in_alexnets_first_layer(monkeypatch, tiny):
    from intriguing.chapters import spectral as chapter

    monkeypatch.setattr(chapter, "NETWORKS", ["softmax1", "N100-100-10"])  # the two cheapest to train
    hand_set = pd.DataFrame({"Upper bound": [3.0, 5.0, 4.0]}, index=["stem", "middle", "head"])
    monkeypatch.setattr(chapter, "efficientnet_table", lambda: hand_set)
    table = chapter.largest_bounds(tiny)
    lite0 = table.loc["EfficientNet-Lite0"]
    assert (lite0["in layer"], lite0["position"], lite0["largest in the first layer"]) == ("middle", 2, False)
    assert list(table.index) == ["softmax1", "N100-100-10", "EfficientNet-Lite0", "AlexNet (the paper's Table 5)"]
    paper_row = table.loc["AlexNet (the paper's Table 5)"]
    assert (paper_row["in layer"], paper_row["position"], paper_row["largest upper bound"]) == ("Conv. 1", 1, 20.0)
    assert (table["largest upper bound"] >= table["first layer's upper bound"]).all()
    assert table.loc["softmax1", "layers"] == 1 and table.loc["softmax1", "largest in the first layer"]
    assert (table["largest in the first layer"] == (table["position"] == 1)).all()
