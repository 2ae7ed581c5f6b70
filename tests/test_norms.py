import pytest
import torch

from intriguing.norms import squared_norm


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("dims", [None, 1, (1, 2), -1, (0, -1)])
def test_squared_norm_equals_the_power_rule_bit_for_bit_with_its_gradient(dtype, dims):
    torch.manual_seed(0)
    x = torch.randn(7, 5, 3, dtype=dtype)
    outer = torch.randn_like(x.pow(2).sum(dims) if dims is not None else x.pow(2).sum())
    values, grads = [], []
    for norm in (lambda t: t.pow(2).sum(dims) if dims is not None else t.pow(2).sum(), lambda t: squared_norm(t, dims)):
        leaf = x.clone().requires_grad_(True)
        value = norm(leaf)
        (value * outer).sum().backward()
        values.append(value.detach())
        grads.append(leaf.grad)
    assert torch.equal(values[0], values[1]) and torch.equal(grads[0], grads[1])


def test_squared_norm_known_answers():
    x = torch.tensor([[3.0, 4.0], [1.0, 2.0]], requires_grad=True)
    value = squared_norm(x, 1)
    assert value.tolist() == [25.0, 5.0]
    value.sum().backward()
    assert x.grad.tolist() == [[6.0, 8.0], [2.0, 4.0]]
    assert squared_norm(torch.tensor(3.0)).item() == 9.0


@pytest.mark.parametrize("x, dims, message", [
    (torch.ones(2, 3, dtype=torch.int64), 1, "floating-point tensor"),
    (torch.ones(2, 3), 2, "dimension 2 is out of range for a tensor of shape \\(2, 3\\)"),
    (torch.ones(2, 3), -3, "dimension -3 is out of range"),
    (torch.ones(2, 3), (), "dims is empty"),
])
def test_squared_norm_names_bad_input(x, dims, message):
    with pytest.raises(ValueError, match=message):
        squared_norm(x, dims)
