import pytest
import torch

from intriguing.models import NETWORKS, build_model, get_spec


def test_unknown_network_lists_known_names():
    with pytest.raises(ValueError, match="unknown network 'N300'.*softmax1.*AE400-10"):
        get_spec("N300")
    with pytest.raises(ValueError, match="unknown network"):
        build_model("alexnet")


@pytest.mark.parametrize("name", list(NETWORKS))
def test_every_network_maps_images_to_ten_logits(name):
    model = build_model(name)
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert len(model.weight_layers()) == len(get_spec(name).weight_decay)


@pytest.mark.parametrize("name", ["softmax1", "Conv"])
def test_wrong_input_shape_is_named(name):
    with pytest.raises(ValueError, match=r"expects images of shape \(N, 1, 28, 28\), got \(3, 784\)"):
        build_model(name)(torch.rand(3, 784))


def test_initial_weights_are_seeded_and_leave_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a = build_model("N100-100-10")
    after = torch.rand(1)
    b = build_model("N100-100-10")
    assert torch.equal(after, expected)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(build_model("M2").layers[0].weight, a.layers[0].weight)


def test_architectures_match_the_paper():
    widths = lambda name: [m.out_features for m in build_model(name).weight_layers()]
    assert widths("softmax1") == [10]
    assert widths("N200-200-10") == [200, 200, 10]
    assert widths("M1'") == [123, 456, 10]
    assert build_model("AE400-10").encoder.out_features == 400
    assert {get_spec(n).train_set for n in ["M1", "M1'", "M2"]} == {"P1", "P2"}
