"""The chapter modules on the tiny profile: the paper's layouts, and checks that can fail."""

import pandas as pd
import pytest
import torch

from intriguing import paper
from intriguing.chapters import blind_spots, cross_model, cross_training_set


def test_table2_has_the_papers_layout_and_full_diagonal(tiny):
    table2 = cross_model.table2(tiny)
    assert list(table2.index) == list(paper.TABLE2.index) and list(table2.columns) == list(paper.TABLE2.columns)
    cross_model.check_diagonal(table2)
    assert table2.loc["Gaussian noise, stddev=0.3", "Av. distortion"] == pytest.approx(0.3, rel=0.05)
    side = cross_model.compare_table2(table2, tiny)
    assert ("Av. distortion", "ours") in side.columns
    broken = table2.copy()
    broken.loc["softmax1", "softmax1"] = 99.0
    with pytest.raises(AssertionError):
        cross_model.check_diagonal(broken)


def test_tables_3_and_4_have_the_papers_layout(tiny):
    table4 = cross_training_set.table4(tiny)
    assert list(table4.index) == list(paper.TABLE4.index) and list(table4.columns) == list(paper.TABLE4.columns)
    cross_training_set.check_diagonal(table4)
    m2 = ("Distorted for M2, amplified", "M2")
    nearly = table4.copy()
    nearly.loc[m2] = 99.99  # one amplified example of 10,000 lost, as on another machine: not a failure
    cross_training_set.check_diagonal(nearly)
    nearly.loc[m2] = 99.8
    with pytest.raises(AssertionError):
        cross_training_set.check_diagonal(nearly)
    amplified = list(cross_training_set.AMPLIFIED.values())
    assert table4.loc[amplified, "Av. distortion"].to_numpy() == pytest.approx([0.1] * 3)
    assert cross_training_set.mutual_transfer(table4).shape == (2, 2)
    assert len(cross_training_set.amplified_cross_cells(table4)) == 4
    assert cross_training_set.deviations(table4, tiny).empty  # none recorded for the tiny profile
    table3 = cross_training_set.table3(tiny)
    assert isinstance(table3, pd.DataFrame) and (table3["Min Av. Distortion"] > 0).all()
    assert table3.index.names == ["network", "replicate"] and len(table3) == 3


def test_replicated_tables_compare_their_means_and_widen_the_tolerance_to_their_spread(monkeypatch, tiny):
    from dataclasses import replace

    from intriguing import profiles, spread
    from intriguing.chapters import networks

    twice = replace(tiny, replicates={"softmax1": 2, "M1": 2, "M1'": 2, "M2": 2})
    monkeypatch.setitem(profiles.PROFILES, "tiny", twice)
    samples = networks.table1_samples(twice)
    assert samples.xs("softmax1", level="network").index.tolist() == [0, 1]
    assert samples.xs("softmax2", level="network").index.tolist() == [0]
    side = networks.compare_table1(samples, twice)
    mean = samples.xs("softmax1", level="network")["Test error"].mean()
    assert side.loc["softmax1", ("Test error", "ours")] == pytest.approx(mean)
    assert ("tolerance", "") in side.columns
    samples4 = cross_training_set.table4_samples(twice)
    assert samples4.index.unique("replicate").tolist() == [0, 1]
    assert not samples4.xs(0, level="replicate").equals(samples4.xs(1, level="replicate"))
    beside = spread.beside_paper(samples4, paper.TABLE4, only_replicated=True)
    assert (beside["n"] == 2).all() and len(beside) == paper.TABLE4.size


def test_a_distortion_far_from_the_papers_fails_its_relative_tolerance(tiny):
    table2 = paper.TABLE2.copy()
    table2.loc["softmax1", "Av. distortion"] = 0.2  # 3.2x the paper's 0.062
    strict = type(tiny)(**{**tiny.__dict__, "distortion_tolerance": 0.25, "transfer_tolerance_pp": 15.0})
    with pytest.raises(paper.PaperMismatch, match="softmax1 / Av. distortion"):
        cross_model.compare_table2(table2, strict)


def test_blind_spots_table_and_exact_comparison(tiny):
    table = blind_spots.table1_distortion(tiny)
    blind_spots.check_success(table)
    assert (table["random / min"] >= 1 - 1e-6).all()
    exact = blind_spots.exact_comparison(tiny)
    blind_spots.check_exact(exact)
    assert list(exact.index) == ["softmax1", "softmax2", "softmax3"]


def _seeds(errors: dict[str, list[float]]) -> pd.DataFrame:
    rows = [{"variant": v, "seed": s, "test error": e} for v, es in errors.items() for s, e in enumerate(es)]
    return pd.DataFrame(rows).set_index(["variant", "seed"])


def test_an_ordering_holds_reverses_or_is_unresolved_by_a_paired_test():
    from intriguing.chapters import adversarial_training as chapter

    found = _seeds({"pools at every layer": [1.1, 1.2, 1.3], "dropout": [1.5, 1.6, 1.7],
                    "weight decay": [1.5, 1.7, 1.9], "pool at hidden layer 2": [2.3, 2.4, 2.5],
                    "pool at hidden layer 1": [1.0, 3.0, 2.0], "pool at the input": [1.9, 2.0, 2.1],
                    "fast gradient sign": [1.4, 1.6, 1.8], "pools, best reading": [0.9, 1.1, 1.3],
                    "weight decay, first recipe": [2.0, 2.1, 2.2]})
    order = chapter.orderings(found)
    assert order.loc["fast gradient sign < weight decay", "verdict"] == "holds"  # −0.1 on every seed
    # pools − dropout is −0.4 on every seed (to rounding): no spread, p ≈ 0.
    assert order.loc["pools at every layer < dropout", "verdict"] == "holds"
    assert order.loc["pools at every layer < dropout", "p-value"] < 1e-10
    # dropout − weight decay: 0, −0.1, −0.2: mean −0.1, sd 0.1, t = −0.1 / (0.1 / √3) = −1.73, p = 0.23 (2 df).
    row = order.loc["dropout < weight decay"]
    assert row["t"] == pytest.approx(-3 ** 0.5) and row["p-value"] == pytest.approx(0.2254, abs=1e-3)
    assert row["verdict"] == "not resolved" and row["test"] == "paired t = -1.7, p = 0.23, 3 seeds"
    assert order.loc["pool at hidden layer 2 < pool at the input", "verdict"] == "reversed"  # +0.4 on every seed
    assert order.loc["pools, best reading < weight decay", "verdict"] == "holds"  # −0.6 on every seed
    # −0.5, −0.4, −0.3: t = −0.4 / (0.1 / √3) = −6.9, p = 0.020 (2 df)
    assert order.loc["weight decay < weight decay, first recipe", "p-value"] == pytest.approx(0.0202, abs=1e-3)
    chapter.check_orderings(order)
    single = chapter.orderings(found.xs(0, level="seed", drop_level=False))
    assert (single["verdict"] == "not resolved").all()  # one seed: no spread, no verdict
    assert (single["test"] == "one seed: no test").all() and single["p-value"].isna().all()
    chapter.check_orderings(single)
    measured = found.assign(**{"training error": 0.0, "distortion": 0.06, "seconds": 1.0})
    said = chapter.pools_verdict(order, chapter.summary(measured), "runner-up targets")
    # both readings beat both baselines; the chosen one (1.10 %) is the lower
    assert said.startswith("Pools at every layer under the reading 'runner-up targets' beat both") and "1.10 %" in said
    assert "can show an adversarial regulariser helping" in said
    none = chapter.pools_verdict(single, chapter.summary(measured.xs(0, level="seed", drop_level=False)), "mix 0.2")
    assert none.startswith("No reading of the pools at every layer beats both") and "the reading 'mix 0.2', is at 0.90 %" in none
    assert "is not resolved" in none


def test_the_tuning_picks_the_best_held_out_recipe_dropout_epsilon_and_reading():
    from intriguing.adversarial_training import Recipe
    from intriguing.chapters import adversarial_training as chapter
    from intriguing.profiles import get_profile

    smoke = get_profile("smoke")
    first, sgd = smoke.adversarial_recipes
    assert (first.optimizer, first.schedule) == chapter.FIRST_FAMILY and sgd.optimizer == "sgd"
    tuned = pd.DataFrame({"recipe": [first.describe(), sgd.describe(), sgd.describe(), sgd.describe()],
                          "input dropout": [0.0, 0.0, 0.0, 0.2], "hidden dropout": [0.0, 0.0, 0.5, 0.5],
                          "held-out error (%)": [2.4, 2.1, 2.3, 2.0]})
    control = pd.DataFrame({"epsilon": [0.05, 0.1], "held-out error (%)": [1.9, 1.8], "chosen": [False, True]})
    readings = pd.DataFrame({"held-out error (%)": [3.0, 2.5], "chosen": [False, True]},
                            index=["first reading", "hidden layers only"])
    choices = chapter.choose(smoke, tuned, control, readings)
    assert choices == chapter.Choices(recipe=sgd, first_recipe=first, dropout=(0.2, 0.5), epsilon=0.1,
                                      reading="hidden layers only")
    efforts = pd.DataFrame({"chosen": [False, True]}, index=pd.MultiIndex.from_tuples(
        [("first reading", e) for e in list(chapter.EFFORTS_TRIED)[:2]], names=["reading", "effort"]))
    assert chapter.choose(smoke, tuned, control, readings, efforts).effort == list(chapter.EFFORTS_TRIED)[1]
    best = chapter.variant_settings(chapter.BEST_READING, smoke, choices)
    assert best.pool_layers == (1, 2) and best.optimizer == "sgd" and best.lr == sgd.lr
    assert chapter.variant_settings(chapter.FIRST_RECIPE, smoke, choices).optimizer == "adam"
    assert chapter.variant_settings(chapter.CONTROL, smoke, choices).fgsm_epsilon == 0.1
    assert chapter.variant_settings("dropout", smoke, choices).dropout_input == 0.2
    assert chapter.variant_settings("dropout", smoke, choices).epochs == sgd.epochs  # no epochs column: the recipe's
    longer = pd.concat([tuned.assign(epochs=5), pd.DataFrame({
        "recipe": [sgd.describe()] * 2, "input dropout": [0.2, 0.2], "hidden dropout": [0.5, 0.5], "epochs": [20, 40],
        "held-out error (%)": [1.7, 1.8]})], ignore_index=True)
    trained_longer = chapter.choose(smoke, longer, control, readings)
    assert trained_longer.dropout_epochs == 20 and trained_longer.dropout == (0.2, 0.5)
    assert chapter.variant_settings("dropout", smoke, trained_longer).epochs == 20
    assert chapter.variant_settings("weight decay", smoke, trained_longer).epochs == sgd.epochs
    with pytest.raises(ValueError, match="both with and without dropout"):
        chapter.choose(smoke, tuned[tuned["input dropout"] == 0.2], control, readings)
    with pytest.raises(ValueError, match="no recipe of the first family"):
        chapter.choose(smoke, tuned.iloc[1:], control, readings)
    with pytest.raises(ValueError, match="no recipe 'SGD, cosine, lr 9"):
        chapter.choose(smoke, tuned.replace(sgd.describe(), Recipe("sgd", "cosine", 9.0, 5).describe()), control,
                       readings)
    with pytest.raises(ValueError, match="unknown variant"):
        chapter.variant_settings("pools everywhere", smoke, choices)


def test_the_cheapest_effort_within_the_standard_errors_is_chosen_and_applied_to_pooled_variants_only():
    from intriguing.chapters import adversarial_training as chapter
    from intriguing.profiles import get_profile

    efforts = list(chapter.EFFORTS_TRIED)  # the profile's, then cheaper ones

    def table(errors: dict[str, tuple[float, float]]) -> pd.DataFrame:
        rows = [{"reading": reading, "effort": effort, "held-out error (%)": errors[effort][r], "se (pp)": 0.1,
                 "minutes": {efforts[0]: 3.0, efforts[1]: 2.0, efforts[2]: 1.0}[effort]}
                for r, reading in enumerate(chapter.EFFORT_READINGS) for effort in efforts]
        return pd.DataFrame(rows).set_index(["reading", "effort"])

    # 2 standard errors of a difference of two errors with se 0.1 pp each: 0.283 pp.
    assert chapter.cheapest_effort(table({efforts[0]: (2.0, 1.9), efforts[1]: (2.1, 2.0), efforts[2]: (2.28, 2.1)})) \
        == efforts[2]
    assert chapter.cheapest_effort(table({efforts[0]: (2.0, 1.9), efforts[1]: (2.1, 2.0), efforts[2]: (2.29, 2.1)})) \
        == efforts[1]  # the cheapest misses under the first reading
    assert chapter.cheapest_effort(table({efforts[0]: (2.0, 1.9), efforts[1]: (2.4, 2.0), efforts[2]: (2.0, 2.3)})) \
        == efforts[0]  # every cheaper effort misses under one reading
    smoke = get_profile("smoke")
    recipe = smoke.adversarial_recipes[0]
    choices = chapter.Choices(recipe=recipe, first_recipe=recipe, dropout=(0.0, 0.2), epsilon=0.1,
                              reading="fixed at 0.05 RMS", effort=efforts[2])
    c_steps, max_iter = chapter.EFFORTS_TRIED[efforts[2]]
    for variant in ("pools at every layer", chapter.BEST_READING, "pool at the input"):
        search = chapter.variant_settings(variant, smoke, choices).search
        assert (search.c_steps, search.max_iter) == (c_steps, max_iter)
    assert chapter.variant_settings("weight decay", smoke, choices) == recipe.applied(smoke.adversarial_training)
    with pytest.raises(ValueError, match="unknown effort"):
        chapter.with_effort(smoke.adversarial_training, "as hard as it can")


def test_every_pool_reading_changes_what_it_says_and_only_that():
    from intriguing.chapters import adversarial_training as chapter

    base = chapter.variant_settings("pools at every layer", "full", chapter.Choices(
        recipe=get_profile_recipe(), first_recipe=get_profile_recipe(), dropout=(0.0, 0.2), epsilon=0.1,
        reading="first reading"))
    changes = {reading: chapter._changes(base, read(base)) for reading, read in chapter.POOL_READINGS.items()}
    assert changes["first reading"] == "none"
    assert changes["hidden layers only"] == "pool_layers (1, 2)"
    assert changes["from half-way"] == f"pool_start {base.epochs // 2}"
    assert changes["capped at 0.1 RMS"] == "pool_distortion 0.1, pool_scaling cap"
    assert len(set(changes.values())) == len(changes)  # every reading differs from every other


def get_profile_recipe():
    from intriguing.profiles import get_profile

    return get_profile("full").adversarial_recipes[0]


def test_a_filter_equal_to_a_training_image_has_similarity_one(monkeypatch, tiny):
    from types import SimpleNamespace

    from intriguing import artifacts
    from intriguing.chapters import networks
    from intriguing.models import build_model

    model = build_model("AE400-10")
    images = artifacts.training_split("train", tiny).images.flatten(1)  # 200 images
    with torch.no_grad():
        model.encoder.weight.copy_(3.0 * torch.cat([images, images]))  # each filter a scaled training image
    monkeypatch.setattr(networks, "trained_network", lambda *a, **k: SimpleNamespace(model=model))
    table = networks.filter_similarity(tiny)
    assert table.loc["trained", "25 %"] == pytest.approx(1.0, abs=1e-5)
    assert table.loc["initial", "median"] < 0.5  # random weights look like no digit
    assert networks.autoencoder_filters(tiny, count=20).axes


def test_noise_accuracy_covers_every_table1_network(tiny):
    accuracy = blind_spots.noise_accuracy(tiny)
    assert list(accuracy.index) == list(paper.TABLE1.index)
    gap = accuracy["unclipped"] - paper.FIGURES["figure7c_noise_accuracy_percent"]
    assert accuracy["unclipped − paper (pp)"].to_numpy() == pytest.approx(gap.to_numpy())


def test_nearest_target_sets_are_no_larger_than_random_ones_and_beat_noise_per_network(tiny):
    table = cross_model.nearest_target_table2(tiny)
    assert list(table.index.unique("targets")) == ["random target", "nearest target", "noise"]
    transfer = cross_model.nearest_target_transfer(table)
    assert list(transfer.index) == list(paper.TABLE1.index)
    assert (transfer["nearest target: distortion"] <= transfer["random target: distortion"] + 1e-6).all()
    assert transfer["nearest target: beats noise on"].between(0, 5).all()


def test_table4_nearest_target_sets_are_no_larger_and_cover_both_kinds(tiny):
    table = cross_training_set.nearest_target_table4(tiny)
    assert list(table.index.unique("targets")) == ["random target", "nearest target", "noise"]
    transfer = cross_training_set.nearest_target_transfer(table)
    assert len(transfer) == 6  # three networks, as found and amplified
    cross_training_set.check_nearest_no_larger(transfer)
    amplified = transfer.loc[[cross_training_set.AMPLIFIED[n] for n in cross_training_set.NETWORKS]]
    assert amplified["nearest target: distortion"].to_numpy() == pytest.approx(0.1, abs=1e-4)
    assert transfer["random target: beats noise on"].between(0, 2).all()


def test_a_nearest_target_set_larger_than_its_random_one_is_caught():
    found = pd.DataFrame({"nearest target: distortion": [0.05], "random target: distortion": [0.04]})
    with pytest.raises(AssertionError):
        cross_training_set.check_nearest_no_larger(found)


def test_units_verdicts_are_read_per_replicate_and_checked_against_the_recorded_ones(tiny):
    from dataclasses import replace

    from intriguing.chapters import units

    found = units.replicate_verdicts(replace(tiny, replicates={"N100-100-10": 2}))
    assert list(found.index) == [("N100-100-10", 0), ("N100-100-10", 1)]
    assert set(found["more coherent"]) <= {"units", "random directions", "neither"}
    paper_scale = replace(tiny, paper_scale=True)
    seed_dependent = pd.DataFrame({"more coherent": ["random directions", "neither"]},
                                  index=pd.MultiIndex.from_tuples([("N100-100-10", 0), ("N100-100-10", 1)]))
    units.check_verdicts(seed_dependent, paper_scale)
    with pytest.raises(AssertionError):
        units.check_verdicts(seed_dependent.replace("neither", "units"), paper_scale)


def test_figure5_factors_change_one_thing_at_a_time(tiny):
    from dataclasses import replace

    from intriguing.attacks import SearchSettings
    from intriguing.chapters import spectral

    profile = replace(tiny, imagenet_examples=1, imagenet_factor_examples=1,
                      imagenet_search=SearchSettings(c_steps=2, max_iter=3, network_precision="float32"),
                      imagenet_fine_search=SearchSettings(c_steps=2, max_iter=4, network_precision="float32"))
    factors = spectral.figure5_factors(profile)
    assert len(factors) == 4
    chapter = factors.iloc[0]
    if chapter["reached target (%)"] > 0:  # the ratio is taken over the images that reached their target
        assert chapter["× the chapter's"] == pytest.approx(1.0)
    assert factors["in 8-bit levels"].to_numpy() == pytest.approx(255 * factors["average distortion"].to_numpy(), nan_ok=True)
    images, result = spectral.figure5(profile)
    rounding = spectral.figure5_rounding(images, result)
    assert 0 <= rounding["still at target (%)"] <= 100 and 0 <= rounding["pixels unchanged by the attack (%)"] <= 100


def test_adversarial_training_is_compared_with_the_paper_within_three_sd_of_its_seeds_or_the_stated_pp_with_one():
    from intriguing import paper
    from intriguing.chapters import adversarial_training as chapter
    from intriguing.profiles import get_profile

    smoke = get_profile("smoke")
    table = pd.DataFrame({"test error": [1.85, 1.3, 1.2], "sd": [0.1, 0.1, 0.1], "seeds": [3, 3, 3]},
                         index=["weight decay", "dropout", "pools at every layer"])
    chapter.compare_paper(table, smoke)  # 1.85 is 0.25 pp from 1.6: inside 3 sd = 0.3
    table.loc["weight decay", "test error"] = 1.95  # 0.35 pp: outside, though inside the stated 6 pp
    with pytest.raises(paper.PaperMismatch, match="weight decay"):
        chapter.compare_paper(table, smoke)
    one = table.assign(sd=float("nan"), seeds=1)
    chapter.compare_paper(one, smoke)  # one seed: the profile's stated tolerance
    one.loc["dropout", "test error"] = 1.3 + smoke.error_tolerance_pp + 0.1
    with pytest.raises(paper.PaperMismatch, match="dropout"):
        chapter.compare_paper(one, smoke)


def test_a_variants_missing_seeds_are_trained_together_and_stored_one_by_one(isolated_cache, tiny, monkeypatch):
    from intriguing.adversarial_training import AdversarialTrainingSettings
    from intriguing.chapters import adversarial_training as chapter
    from intriguing.data import Split

    gen = torch.Generator().manual_seed(0)
    train = Split(torch.rand(48, 1, 28, 28, generator=gen), torch.randint(0, 10, (48,), generator=gen))
    settings = AdversarialTrainingSettings(epochs=1, pool_start=0, batch_size=16, lr=1e-2)
    trained_together = []
    real = chapter.adversarial_fit_many

    def counting(models, data, s, *, seeds, **kwargs):
        trained_together.append(list(seeds))
        return real(models, data, s, seeds=seeds, progress=False, **{k: v for k, v in kwargs.items() if k != "progress"})

    monkeypatch.setattr(chapter, "adversarial_fit_many", counting)
    first = chapter.train_variants("weight decay", settings, train, tiny, [0, 1], {})
    again = chapter.train_variants("weight decay", settings, train, tiny, [1, 2], {})
    assert trained_together == [[0, 1], [2]]  # seed 1 came from the cache
    assert torch.equal(first[1].model.layers[0].weight, again[0].model.layers[0].weight)
    assert not torch.equal(first[0].model.layers[0].weight, first[1].model.layers[0].weight)
    assert len(first[0].test_error) == 1 and first[0].refresh_log == []


def test_the_pool_record_averages_each_refresh_over_seeds():
    from intriguing.chapters import adversarial_training as chapter

    def log(shift):
        return [{"step": step, "epoch": 0, "layer": layer, "replaced": 10, "success": 0.5 + shift,
                 "median distortion": 0.1 * (layer + 1) + shift, "p90 distortion": 0.2}
                for step in (0, 100) for layer in (0, 2)]

    found = pd.DataFrame({"refreshes": [log(0.0), log(0.2), []]},
                         index=pd.MultiIndex.from_tuples([("pools at every layer", 0), ("pools at every layer", 1),
                                                          ("weight decay", 0)], names=["variant", "seed"]))
    record = chapter.pool_record(found)
    assert record.loc[("input", 100), "success (%)"] == pytest.approx(60.0)  # (50 + 70) / 2
    assert record.loc[("hidden layer 2", 0), "median distortion"] == pytest.approx(0.4)  # (0.3 + 0.5) / 2
    assert (record["seeds"] == 2).all()
    held = chapter.pool_summary(record)
    assert list(held.index) == ["input", "hidden layer 2"] and (held["refreshes"] == 2).all()
    with pytest.raises(ValueError, match="recorded no pool refresh"):
        chapter.pool_record(found, "weight decay")


def test_softmax1_distortion_readings_change_one_thing_each(tiny):
    readings = blind_spots.distortion_readings(tiny)
    books = ("half", blind_spots.BOOKS_SEARCH)
    assert readings.index[0] == books and readings.index.names == ["λ reading", "search"]
    assert set(readings.index) == {("half", blind_spots.BOOKS_SEARCH), ("sum", blind_spots.BOOKS_SEARCH),
                                   ("per_unit", blind_spots.BOOKS_SEARCH)} | {
        ("half", reading) for reading in blind_spots.SEARCH_READINGS}
    assert (readings["images"] == tiny.attack_examples).all() and (readings["mean distortion"] > 0).all()
    assert readings["success (%)"].between(0, 100).all()
    paper_value = paper.TABLE1.loc["softmax1", "Av. min. distortion"]
    assert readings["/ paper's"].to_numpy() == pytest.approx((readings["mean distortion"] / paper_value).to_numpy())
    assert (readings["mean distortion"] != readings.loc[books, "mean distortion"]).sum() >= 3  # each reading is its own run


def test_table4_at_the_papers_distortion_rescales_each_set_to_table3s_value(tiny):
    found = cross_training_set.at_papers_distortion(tiny)
    assert found.index.names == ["set", "replicate"] and len(found) == 3
    for name in cross_training_set.NETWORKS:
        row = found.loc[(cross_training_set.PLAIN[name], 0)]
        assert row["Av. distortion"] == pytest.approx(paper.TABLE3.loc[name, "Min Av. Distortion"], rel=1e-5)
        assert ((row[cross_training_set.NETWORKS] >= 0) & (row[cross_training_set.NETWORKS] <= 100)).all()
