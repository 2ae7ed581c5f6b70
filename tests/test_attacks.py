import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from intriguing import attacks
from intriguing.attacks import (
    CPU_BATCH,
    GPU_BATCH,
    CSearch,
    SearchSettings,
    classified_as,
    default_batch_size,
    exact_linear_attack,
    min_distortion_attack,
    random_targets,
    rms_distortion,
)
from intriguing.lbfgs_box import BACKTRACKINGS, Evaluation, _free_mask, _shrink, box_lbfgs


def test_box_lbfgs_solves_a_separable_box_quadratic():
    torch.manual_seed(0)
    scale, centre = torch.rand(8, 30).double() * 5 + 0.2, torch.randn(8, 30).double()
    objective = lambda z, i: (scale[i] * (z - centre[i]).pow(2)).sum(1)
    z = box_lbfgs(objective, torch.full((8, 30), 0.5).double(), 200, gtol=1e-9, ftol=0).z
    assert torch.allclose(z, centre.clamp(0, 1), atol=1e-6)


@pytest.mark.parametrize("lower, upper", [(0.0, 1.0), (-1.0, 2.0), (0.0, float("inf"))])
def test_the_free_mask_holds_exactly_the_coordinates_at_a_bound_whose_gradient_points_out(lower, upper):
    torch.manual_seed(0)
    z = lower + torch.rand(50, 40) * 2
    if upper < float("inf"):
        z = z.clamp(max=upper)
        z[:, 10:20] = upper
    z[:, :10] = lower
    g = torch.randn(50, 40)
    g[:, ::7] = 0  # no gradient: free, wherever it sits
    blocked = ((z == lower) & (g > 0)) | ((z == upper) & (g < 0))
    assert torch.equal(_free_mask(z, g, lower, upper), (~blocked).float())
    assert 0 < blocked.float().mean() < 0.5


def test_box_lbfgs_examples_do_not_interact():
    torch.manual_seed(1)
    mats = torch.randn(6, 20, 20) / 5
    hess, centre = mats @ mats.transpose(1, 2) + 0.1 * torch.eye(20), torch.randn(6, 20)
    objective = lambda z, i: 0.5 * torch.einsum("bi,bij,bj->b", z - centre[i], hess[i], z - centre[i])
    together = box_lbfgs(objective, torch.full((6, 20), 0.5), 100).z
    alone = box_lbfgs(lambda z, i: objective(z, i + 4), torch.full((1, 20), 0.5), 100).z
    assert torch.allclose(together[4], alone[0], atol=1e-5)


def _quadratic_with_calls(calls: list[torch.Tensor]):
    """A separable box quadratic per example, both as values for autograd and as an Evaluation with its gradient and
    the points' sums as aux; each call's first point is appended to ``calls``."""
    torch.manual_seed(2)
    scale, centre = torch.rand(5, 12).double() * 5 + 0.2, torch.randn(5, 12).double()

    def values(z, i):
        calls.append(z[0].detach().clone())
        return (scale[i] * (z - centre[i]).pow(2)).sum(1)

    def evaluation(z, i):
        calls.append(z[0].detach().clone())
        z = z.detach()
        return Evaluation((scale[i] * (z - centre[i]).pow(2)).sum(1), scale[i] * 2 * (z - centre[i]), z.sum(1, keepdim=True))

    return values, evaluation


def test_box_lbfgs_takes_an_objective_that_gives_its_own_gradient_and_reports_aux_at_the_final_points():
    calls: list[torch.Tensor] = []
    values, evaluation = _quadratic_with_calls(calls)
    z0 = torch.full((5, 12), 0.5).double()
    by_autograd, given = box_lbfgs(values, z0, 100, ftol=0), box_lbfgs(evaluation, z0, 100, ftol=0)
    assert torch.equal(by_autograd.z, given.z)  # the same gradients, bit for bit
    assert torch.equal(given.at.aux[:, 0], given.z.sum(1))
    assert torch.allclose(given.at.f, values(given.z, torch.arange(5)))
    assert by_autograd.at.aux.shape == (5, 0)


def test_box_lbfgs_started_with_the_objective_at_its_start_does_not_evaluate_it_there():
    calls: list[torch.Tensor] = []
    _, evaluation = _quadratic_with_calls(calls)
    z0, everyone = torch.full((5, 12), 0.5).double(), torch.arange(5)
    fresh = box_lbfgs(evaluation, z0, 100)
    n_fresh, first = len(calls), calls[0]
    start = evaluation(z0, everyone)
    calls.clear()
    started = box_lbfgs(evaluation, z0, 100, start=start)
    assert torch.equal(first, z0[0]) and not torch.equal(calls[0], z0[0])
    assert len(calls) == n_fresh - 1 and torch.equal(started.z, fresh.z)
    with pytest.raises(ValueError, match=r"start must give f \(5,\), g \(5, 12\)"):
        box_lbfgs(evaluation, z0, 10, start=Evaluation(start.f[:4], start.g[:4], start.aux[:4]))


def test_a_first_step_within_the_known_curvature_lands_on_a_quadratics_minimiser():
    # f = c‖z − x‖², g = 2c(z − x), curvature 2c along every direction. With |z0 − x| ≤ 0.05 everywhere, the
    # 0.1-pixel bound allows a step of 0.1/max|g| = 2/(2c), twice the Newton step: it lands on x's mirror image,
    # no lower, and backtracks. Bounded by 1/(2c) as well, the first step is the Newton step and lands on x, after
    # which the projected gradient is 0 and the example stops.
    c = torch.tensor([0.5, 4.0, 300.0]).double()
    x = torch.full((3, 20), 0.5).double()
    z0 = x + 0.05 * torch.linspace(-1, 1, 20).double()
    trials: list[torch.Tensor] = []

    def objective(z: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        trials.append(z.detach().clone())
        return c[i] * (z - x[i]).pow(2).sum(1)

    bounded = box_lbfgs(objective, z0, 50, ftol=0, min_curvature=2 * c)
    assert torch.equal(bounded.z, x) and len(trials) == 2  # the start, then x
    trials.clear()
    by_pixel = box_lbfgs(objective, z0, 50, ftol=0)
    assert len(trials) > 2 and torch.allclose(by_pixel.z, x, atol=1e-5)


@pytest.mark.parametrize("backtracking", BACKTRACKINGS)
def test_either_backtracking_solves_a_separable_box_quadratic_from_a_far_start(backtracking):
    torch.manual_seed(0)
    scale, centre = torch.rand(8, 30).double() * 50 + 0.2, torch.randn(8, 30).double()
    objective = lambda z, i: (scale[i] * (z - centre[i]).pow(2)).sum(1)
    z = box_lbfgs(objective, torch.zeros(8, 30).double(), 300, gtol=1e-9, ftol=0, backtracking=backtracking).z
    assert torch.allclose(z, centre.clamp(0, 1), atol=1e-6)


def test_a_failed_step_shrinks_to_the_quadratics_minimiser_within_its_safeguards():
    # Along the path, φ(t) = f + t·φ'(0) + t²·q with φ'(0) = -1 (the first-order change of the step tried, t = 1):
    # its minimiser is t* = 1/(2q). q = 2.5 gives 0.2; q = 0.9 gives 0.56, kept at 0.5; q = 50 gives 0.01, kept
    # at 0.1. A step that was not a descent (first-order change ≥ 0) or whose value is NaN is halved.
    f, decrease = torch.zeros(5).double(), torch.tensor([-1.0, -1.0, -1.0, 0.5, -1.0]).double()
    q = torch.tensor([2.5, 0.9, 50.0, 1.0, 1.0]).double()
    f_step = f + decrease + q
    f_step[4] = float("nan")
    assert torch.allclose(_shrink(f, f_step, decrease, "interpolated"), torch.tensor([0.2, 0.5, 0.1, 0.5, 0.5]).double())
    assert _shrink(f, f_step, decrease, "halving") == 0.5


def test_box_lbfgs_rejects_an_unknown_backtracking():
    with pytest.raises(ValueError, match="unknown backtracking 'wolfe'"):
        box_lbfgs(lambda z, i: z.sum(1), torch.full((1, 3), 0.5), 10, backtracking="wolfe")


def test_box_lbfgs_rejects_a_start_outside_the_box():
    with pytest.raises(ValueError, match=r"box \[0.0, 1.0\]"):
        box_lbfgs(lambda z, i: z.sum(1), torch.full((1, 3), 2.0), 10)


def test_rms_distortion_and_random_targets():
    x = torch.zeros(1, 1, 28, 28)
    y = x.clone()
    y[0, 0, 0, :4] = 0.5  # Σ r² = 1, n = 784
    assert rms_distortion(y, x).item() == pytest.approx(1 / 28)
    labels = torch.arange(10).repeat(100)
    targets = random_targets(labels, seed=3)
    assert (targets != labels).all() and set(targets.tolist()) == set(range(10))
    assert torch.equal(targets, random_targets(labels, seed=3))


def two_pixel_model(bias_gap: float) -> nn.Linear:
    """Class 1 beats class 0 when pixel0 + pixel1 <= bias_gap; classes 2-9 never win."""
    model = nn.Linear(784, 10)
    with torch.no_grad():
        model.weight.zero_()
        model.weight[0, :2] = 1.0
        model.bias.copy_(torch.tensor([0.0, bias_gap] + [-100.0] * 8))
    return model


class Flat(nn.Module):
    def __init__(self, linear):
        super().__init__()
        self.linear = linear

    def forward(self, x):
        return self.linear(x.flatten(1))


def test_exact_attack_known_answers():
    x = torch.zeros(2, 1, 28, 28)
    x[:, 0, 0, 0], x[:, 0, 0, 1] = 0.02, 0.9
    model = two_pixel_model(0.5)
    # Need z0 + z1 <= 0.5: the equal split would push z0 below 0, so the box binds: z = (0, 0.5).
    result = exact_linear_attack(model.weight, model.bias, x, torch.tensor([1, 1]), margin=1e-6)
    assert result.success.all()
    assert result.adversarial[0, 0, 0, :2].tolist() == pytest.approx([0.0, 0.5], abs=1e-5)
    assert result.distortion[0].item() == pytest.approx((0.02**2 + 0.4**2) ** 0.5 / 28, rel=1e-4)


def test_exact_attack_reports_an_unreachable_target():
    x = torch.full((1, 1, 28, 28), 0.5)
    model = two_pixel_model(-0.3)  # would need pixel0 + pixel1 <= -0.3: outside the box
    assert not exact_linear_attack(model.weight, model.bias, x, torch.tensor([1])).success.any()


def test_attack_matches_the_exact_optimum_on_a_linear_model():
    torch.manual_seed(0)
    linear = nn.Linear(784, 10)
    with torch.no_grad():  # logits as sharp as a trained softmax model's; with tiny logits the
        linear.weight.mul_(30)  # cross-entropy objective's minimiser strays from the L2 optimum
    images = torch.rand(16, 1, 28, 28)
    labels = linear(images.flatten(1)).argmax(1)
    targets = random_targets(labels, seed=0)
    ours = min_distortion_attack(Flat(linear), images, targets, labels=labels, progress=False)
    exact = exact_linear_attack(linear.weight, linear.bias, images, targets, labels)
    assert ours.success.all() and exact.success.all()
    assert (Flat(linear)(ours.adversarial).argmax(1) == targets).all()
    assert ((ours.adversarial >= 0) & (ours.adversarial <= 1)).all()
    ratio = ours.distortion.mean() / exact.distortion.mean()
    assert 1 - 1e-3 <= ratio <= 1.05


def test_the_exact_attack_is_independent_of_its_chunks_and_meets_its_constraints(monkeypatch):
    import intriguing.attacks as attacks

    torch.manual_seed(1)
    linear = nn.Linear(784, 10)
    with torch.no_grad():
        linear.weight.mul_(30)
    images = torch.rand(20, 1, 28, 28)
    labels = linear(images.flatten(1)).argmax(1)
    targets = random_targets(labels, seed=2)
    whole = exact_linear_attack(linear.weight, linear.bias, images, targets, labels, margin=1e-3)
    monkeypatch.setattr(attacks, "EXACT_CHUNK", 7)
    chunked = exact_linear_attack(linear.weight, linear.bias, images, targets, labels, margin=1e-3)
    assert torch.allclose(whole.adversarial, chunked.adversarial, atol=1e-6)
    logits = linear(whole.adversarial.flatten(1)).double()
    target_logit = logits.gather(1, targets[:, None])
    others = logits.scatter(1, targets[:, None], float("-inf")).amax(1, keepdim=True)
    assert whole.success.all() and (target_logit - others >= 1e-3 - 1e-4).all()  # the margin, up to float32
    assert ((whole.adversarial >= 0) & (whole.adversarial <= 1)).all()


def test_the_search_batch_follows_the_device():
    assert default_batch_size(torch.device("cpu")) == CPU_BATCH
    assert default_batch_size(torch.device("cuda")) == GPU_BATCH > CPU_BATCH


def test_with_the_network_in_float64_an_examples_result_does_not_depend_on_its_batch():
    # On some BLAS kernels a float32 matrix product rounds a row differently with the number of rows, and the
    # search's discrete choices turned that into per-example changes of up to 0.7 % (500 smoke test images,
    # batch 4 against 1000, AVX-512 MKL). With the network in float64 the same comparison moved none of them.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.Sigmoid(), nn.Linear(64, 64), nn.Sigmoid(), nn.Linear(64, 10))
    with torch.no_grad():
        for layer in model[1::2]:
            layer.weight.mul_(8)  # logits as sharp as a trained network's: every search succeeds
    images = torch.rand(40, 1, 28, 28)
    targets = random_targets(model(images).argmax(1), seed=1)
    settings = SearchSettings(c_steps=6, max_iter=30)
    runs = [min_distortion_attack(model, images, targets, batch_size=b, settings=settings, progress=False)
            for b in (40, 13, 4, 1)]
    # Measured here (AVX-512 and AVX2 MKL kernels alike): with the network in float64 no example moved at all; in
    # float32, 3, 5 and 7 of the 40 moved by more than 1e-6 (up to 0.2 %) and the mean by up to 1e-4. A float64
    # difference can still survive the rounding to the search's float32, rarely: one example of 40 may move.
    for run in runs[1:]:
        assert torch.equal(run.success, runs[0].success)
        moved = (run.distortion - runs[0].distortion).abs() / runs[0].distortion
        assert int((moved > 1e-6).sum()) <= 1
        assert abs(run.distortion.mean() / runs[0].distortion.mean() - 1) < 1e-5
    assert runs[0].success.all() and runs[0].adversarial.dtype == torch.float32


def test_the_search_leaves_the_model_and_the_input_dtype_as_they_were():
    model = Flat(nn.Linear(784, 10))
    images = torch.rand(3, 1, 28, 28, dtype=torch.float64)
    targets = random_targets(model(images.float()).argmax(1), seed=0)
    result = min_distortion_attack(model, images, targets, settings=SearchSettings(c_steps=2, max_iter=5), progress=False)
    assert result.adversarial.dtype == torch.float64 and result.distortion.dtype == torch.float32
    assert next(model.parameters()).dtype == torch.float32
    single = SearchSettings(c_steps=2, max_iter=5, network_precision="float32")
    assert min_distortion_attack(model, images.float(), targets, settings=single, progress=False).adversarial.dtype == torch.float32


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True])
def test_the_search_rejects_a_batch_size_below_one(batch_size):
    model = Flat(nn.Linear(784, 10))
    with pytest.raises(ValueError, match="batch_size must be a positive integer or None"):
        min_distortion_attack(model, torch.rand(2, 1, 28, 28), torch.tensor([1, 2]), batch_size=batch_size, progress=False)


@pytest.mark.parametrize("targets, labels, message", [
    (torch.tensor([1, 2]), torch.tensor([1, 3]), "target equals the true label for example 0"),
    (torch.tensor([1]), None, r"targets must have shape \(2,\)"),
    (torch.tensor([1, 2]), torch.tensor([5]), r"labels must have shape \(2,\), one per image, got \(1,\)"),
    (torch.tensor([1, 12]), None, "labels in 0..9"),
])
def test_attack_rejects_bad_targets(targets, labels, message):
    model = Flat(nn.Linear(784, 10))
    with pytest.raises(ValueError, match=message):
        min_distortion_attack(model, torch.rand(2, 1, 28, 28), targets, labels=labels, progress=False)


def test_attack_rejects_images_outside_the_box():
    with pytest.raises(ValueError, match=r"pixels in \[0, 1\]"):
        min_distortion_attack(Flat(nn.Linear(784, 10)), torch.rand(2, 1, 28, 28) + 1, torch.tensor([1, 2]),
                              progress=False)


def test_sharpened_objective_reaches_the_optimum_where_the_papers_does_not():
    torch.manual_seed(0)
    linear = nn.Linear(784, 10)  # untrained: small logits, where cross-entropy's soft maximum misleads
    model = Flat(linear)
    images = torch.rand(16, 1, 28, 28)
    targets = random_targets(model(images).argmax(1), seed=0)
    exact = exact_linear_attack(linear.weight, linear.bias, images, targets).distortion.mean()
    papers = min_distortion_attack(model, images, targets, progress=False).distortion.mean()
    sharp = min_distortion_attack(model, images, targets, settings=SearchSettings(logit_scale=100), progress=False).distortion.mean()
    assert papers / exact > 1.1
    assert sharp / exact <= 1.05


def test_classified_as_needs_the_target_ahead_by_the_margin():
    logits = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.5, 0.0], [2.0, 1.0, 0.0]])
    targets = torch.tensor([1, 1, 1])
    assert classified_as(logits, targets, 1e-3).tolist() == [False, True, False]  # a tie is no success
    assert classified_as(logits, targets, 0.6).tolist() == [False, False, False]


def test_every_success_keeps_its_margin_and_works_on_any_image_shape():
    # A linear model on 3×4×4 images with 5 classes: successes must lead by the margin, so that no
    # re-evaluation (another batch size, another summation order) can flip them.
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 5))
    images = torch.rand(16, 3, 4, 4)
    labels = model(images).argmax(1).detach()
    targets = random_targets(labels, seed=0, n_classes=5)
    result = min_distortion_attack(model, images, targets, labels=labels, settings=SearchSettings(c_steps=4, max_iter=30, margin=0.05),
                                   progress=False)
    assert result.success.all() and result.adversarial.shape == images.shape
    assert classified_as(model(result.adversarial).detach(), targets, 0.05 - 1e-4).all()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_images_with_nan_or_inf_are_rejected(bad):
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    images = torch.full((3, 1, 28, 28), 0.5)
    images[1, 0, 3, 3] = bad
    with pytest.raises(ValueError, match=r"NaN or infinite pixels \(1 of 3 images\)"):
        min_distortion_attack(model, images, torch.tensor([1, 2, 3]), progress=False)


def test_an_empty_batch_gives_an_empty_result():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    result = min_distortion_attack(model, torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long), progress=False)
    assert result.adversarial.shape == (0, 1, 28, 28)
    assert result.success.shape == result.distortion.shape == result.c.shape == (0,)


@pytest.mark.parametrize("field, value, message", [
    ("c_steps", 0, "c_steps must be at least 1"),
    ("max_iter", 0, "max_iter must be at least 1"),
    ("c_init", 0.0, "c_init must be a positive finite number"),
    ("c_init", -1.0, "c_init must be a positive finite number"),
    ("c_init", float("nan"), "c_init must be a positive finite number"),
    ("margin", -0.1, "margin must be a finite non-negative number"),
    ("bracket_tol", -0.5, "bracket_tol must be a finite non-negative number"),
    ("c_steps", 2.5, "c_steps must be an integer, got 2.5"),
    ("max_iter", True, "max_iter must be an integer"),
    ("c_init", 1e-300, r"can reach c outside \[1e-30, 1e\+30\]"),
    ("c_init", 1e25, r"can reach c outside"),
    ("tol", "0.1", "tol must be a number"),
    ("network_precision", "float16", "network_precision must be one of"),
    ("backtracking", "cubic", "backtracking must be one of"),
    ("c_update", "secant", "c_update must be one of"),
    ("restart", "warm", "restart must be one of"),
    ("first_step", "newton", "first_step must be one of"),
    ("first_c_factor", 1.0, "first_c_factor must be a finite number above 1"),
    ("first_c_factor", "3", "first_c_factor must be a number"),
])
def test_search_settings_reject_bad_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        SearchSettings(**{field: value})


def test_search_settings_key_names_every_setting():
    assert SearchSettings().key() == {"c_steps": 10, "c_init": 2.0, "bracket_tol": 0.02, "max_iter": 50,
                                      "memory": 3, "tol": 1e-3, "margin": 1e-3, "network_precision": "float64",
                                      "backtracking": "interpolated", "c_update": "illinois", "restart": "carried",
                                      "first_step": "distortion", "first_c_factor": 3.0}
    assert "first_c_factor" not in SearchSettings(first_c_factor=10.0).key()  # the search as it was before the field
    assert SearchSettings(c_init=5e-22).c_init == 5e-22  # 9 moves reach 5e-22 / (3 · 10^8) > 1e-30 ...
    with pytest.raises(ValueError, match="can reach c outside"):
        SearchSettings(c_init=5e-22, first_c_factor=10.0)  # ... but 5e-22 / 10^9 < 1e-30
    assert "first_step" not in SearchSettings(first_step="pixel").key()  # the search as it was before the field
    assert "restart" not in SearchSettings(restart="evaluated").key()  # the search as it was before the field
    assert "c_update" not in SearchSettings(c_update="bisection").key()  # the search as it was before the field
    assert "backtracking" not in SearchSettings(backtracking="halving").key()  # the search as it was before the field
    assert "network_precision" not in SearchSettings(network_precision="float32").key()  # the search as it was before the field
    assert SearchSettings(logit_scale=10).key()["logit_scale"] == 10
    assert "bracket_tol" not in SearchSettings(bracket_tol=0).key()  # the search as it was before the field


def _counted_sharp_linear_search(monkeypatch, n: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor, list[int]]:
    """A linear model with logits as sharp as a trained model's (every c search brackets), ``n`` random images,
    random targets, and the list into which each c step of a search appends its number of examples."""
    torch.manual_seed(0)
    linear = nn.Linear(784, 10)
    with torch.no_grad():
        linear.weight.mul_(30)
    model = Flat(linear)
    images = torch.rand(n, 1, 28, 28)
    targets = random_targets(model(images).argmax(1), seed=1)
    searched: list[int] = []

    def counting_box_lbfgs(objective, z0, *args, **kwargs):
        searched.append(len(z0))
        return box_lbfgs(objective, z0, *args, **kwargs)

    monkeypatch.setattr(attacks, "box_lbfgs", counting_box_lbfgs)
    return model, images, targets, searched


def test_a_tight_bracket_ends_an_examples_c_search_early_at_almost_the_same_distortion(monkeypatch):
    model, images, targets, searched = _counted_sharp_linear_search(monkeypatch, 8)
    bisection = SearchSettings(c_update="bisection", c_init=1.0, first_c_factor=10.0)
    all_steps = min_distortion_attack(model, images, targets, settings=replace(bisection, bracket_tol=0), progress=False)
    assert searched == [8] * 10
    searched.clear()
    ended = min_distortion_attack(model, images, targets, settings=replace(bisection, bracket_tol=0.1), progress=False)
    # Bisecting a bracket of 10 down to 1.1 takes 5 steps after the 2 or 3 (c above 10) that bracket it.
    assert searched == [8] * 7 + [int((ended.c > 10).sum())]
    assert all_steps.success.all() and ended.success.all()
    assert torch.allclose(ended.distortion, all_steps.distortion, rtol=0.05)


def _steps_to_bracket(c_update: str, log_root: float, bend: float = 0.0, bracket_tol: float = 0.02) -> tuple[int, CSearch]:
    """c steps a :class:`CSearch` of one example takes until its bracket is within ``bracket_tol``, the gap a known
    function of log c: a line through 0 at ``log_root`` (bent into a curve by ``bend``)."""
    search = CSearch.start(1.0, torch.zeros(1, dtype=torch.float64))
    for step in range(1, 40):
        u = search.c.log() - log_root
        gap = -u - bend * u * u.abs()
        search.step(torch.zeros(1, dtype=torch.int64), gap, margin=0.0, c_update=c_update, bracket_tol=bracket_tol,
                    first_factor=10.0)
        if search.bracketed(bracket_tol).all():
            return step, search
    raise AssertionError("the bracket never closed")


def test_the_illinois_c_update_closes_the_bracket_in_fewer_steps_than_bisection():
    # A gap linear in log c: regula falsi lands on its root in the first step inside the bracket [1, 10], and
    # the next step, kept off that end by 0.6 of the tolerance (or a hundredth of the bracket), closes it.
    steps, search = _steps_to_bracket("illinois", math.log(3.0))
    assert steps == 4
    assert search.lo.item() == pytest.approx(3.0) and 3.0 < search.hi.item() <= 1.02 * 3.0
    bisection_steps, bisection = _steps_to_bracket("bisection", math.log(3.0))
    assert bisection_steps == 9  # c = 1, 10, then 7 halvings of log 10 down to log 1.02
    assert bisection.lo.item() <= 3.0 <= bisection.hi.item() <= 1.02 * bisection.lo.item()
    # A bent gap: the secant misses, and the Illinois halving still closes the bracket in fewer steps.
    bent_steps, bent = _steps_to_bracket("illinois", math.log(3.0), bend=3.0)
    assert bent_steps < bisection_steps and bent.lo.item() <= 3.0 <= bent.hi.item()


def test_bisection_tries_the_geometric_mean_of_the_bracket():
    search = CSearch.start(1.0, torch.zeros(3))
    rows = torch.arange(3)
    hit = search.step(rows, torch.tensor([1.0, -1.0, 1.0]), margin=0.5, c_update="bisection", bracket_tol=0.02,
                      first_factor=10.0)
    assert hit.tolist() == [True, False, True] and search.c.tolist() == pytest.approx([10.0, 0.1, 10.0])
    search.step(rows, torch.tensor([-1.0, 1.0, 1.0]), margin=0.5, c_update="bisection", bracket_tol=0.02,
                first_factor=10.0)
    assert search.c.tolist() == pytest.approx([10 ** 0.5, 0.1 ** 0.5, 100.0])
    assert search.lo.tolist() == pytest.approx([1.0, 0.1, 10.0]) and search.hi[:2].tolist() == pytest.approx([10.0, 1.0])


def test_c_moves_first_by_the_first_factor_then_by_ten_until_bracketed():
    search = CSearch.start(1.0, torch.zeros(3, dtype=torch.float64))
    rows = torch.arange(3)
    step = lambda lead: search.step(rows, torch.tensor(lead, dtype=torch.float64), margin=0.0, c_update="bisection",
                                    bracket_tol=0.02, first_factor=3.0)
    step([1.0, 1.0, -1.0])  # c = 1: two successes, one failure
    assert search.c.tolist() == pytest.approx([3.0, 3.0, 1 / 3])
    step([1.0, -1.0, -1.0])  # the second fails at 3: bracketed within a factor of 3, c moves inside
    assert search.c.tolist() == pytest.approx([30.0, 3 ** 0.5, 1 / 30])
    assert search.lo.tolist() == pytest.approx([3.0, 1.0, 0.0]) and search.hi[1:].tolist() == pytest.approx([3.0, 1 / 3])


def test_the_illinois_halves_the_gap_of_the_end_that_stays_and_keeps_its_trials_off_the_ends():
    search = CSearch.start(1.0, torch.zeros(1, dtype=torch.float64))
    one = torch.zeros(1, dtype=torch.int64)
    step = lambda gap: search.step(one, torch.tensor([gap], dtype=torch.float64), margin=0.0, c_update="illinois",
                                   bracket_tol=0.02, first_factor=10.0)
    step(1.0)  # c = 1 succeeds
    step(-9.0)  # c = 10 fails: the line crosses 0 a tenth of the way in log c
    assert search.c.item() == pytest.approx(10 ** 0.1)
    step(0.5)  # lo moves
    assert search.gap_hi.item() == -9.0
    step(0.25)  # lo moves again: hi's gap is halved
    assert search.gap_hi.item() == -4.5 and search.side.item() == 1
    log_lo, log_hi = search.lo.log().item(), search.hi.log().item()
    assert log_lo + 0.6 * math.log1p(0.02) - 1e-12 <= search.c.log().item() <= log_hi - 0.6 * math.log1p(0.02) + 1e-12


def test_the_default_c_update_searches_fewer_steps_at_no_larger_distortion(monkeypatch):
    model, images, targets, searched = _counted_sharp_linear_search(monkeypatch, 16)
    bisection = min_distortion_attack(model, images, targets, settings=SearchSettings(c_update="bisection"), progress=False)
    bisection_steps, searched[:] = sum(searched), []
    illinois = min_distortion_attack(model, images, targets, settings=SearchSettings(), progress=False)
    assert sum(searched) < 0.9 * bisection_steps  # 130 against 153
    assert illinois.success.all() and bisection.success.all()
    assert illinois.distortion.mean() <= 1.001 * bisection.distortion.mean()


def test_carried_restarts_call_the_network_less_and_find_the_same_distortions(monkeypatch):
    """A c step that starts from the objective carried over from the last one (its gradient moved by 2Δc(z − x) where
    the last step succeeded, the best point's own values where it failed) needs no network call there, and lands
    where a fresh evaluation's search lands, up to rounding."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 30), nn.Sigmoid(), nn.Linear(30, 10))
    with torch.no_grad():
        model[3].weight.mul_(10)
    images = torch.rand(12, 1, 28, 28)
    targets = random_targets(model(images).argmax(1), seed=3)
    calls: list[int] = []
    model.register_forward_hook(lambda module, args, out: calls.append(len(out)))
    runs = {}
    for restart in ["evaluated", "carried"]:
        calls.clear()
        runs[restart] = (min_distortion_attack(model, images, targets, settings=SearchSettings(restart=restart),
                                               progress=False), sum(calls))
    (evaluated, rows_evaluated), (carried, rows_carried) = runs["evaluated"], runs["carried"]
    assert carried.success.all() and torch.equal(carried.success, evaluated.success)
    assert torch.allclose(carried.distortion, evaluated.distortion, rtol=1e-3)
    assert rows_carried < 0.9 * rows_evaluated
