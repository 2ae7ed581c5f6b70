"""The claims ledger: every claim decided by a chapter, and each rule's answer on hand-made results."""

import json

import pandas as pd
import pytest
import torch

from intriguing import cli, paper
from intriguing.attacks import AttackResult
from intriguing.chapters import adversarial_training, blind_spots, cross_model, cross_training_set, spectral, units
from intriguing.profiles import get_profile
from intriguing.spread import REPLICATE

CHAPTER_MODULES = {"units": units, "blind_spots": blind_spots, "cross_model": cross_model,
                   "cross_training_set": cross_training_set, "adversarial_training": adversarial_training,
                   "spectral": spectral}
FULL = get_profile("full")


def verdicts(table: pd.DataFrame) -> dict[str, str]:
    return table["verdict"].to_dict()


def test_every_testable_claim_is_decided_by_the_chapter_it_names_and_the_others_say_why():
    keys = [c.key for c in paper.CLAIMS]
    assert len(keys) == len(set(keys))
    decided = {key: name for name, module in CHAPTER_MODULES.items() for key in module.CLAIMS}
    for claim in paper.CLAIMS:
        assert claim.chapter in cli.chapters(cli.Path(".")), claim.key
        if claim.not_testable:
            assert claim.key not in decided and len(claim.not_testable) > 20, claim.key
        else:
            assert decided.get(claim.key) == claim.chapter, f"no chapter module decides {claim.key!r}"
            assert claim.measurement and claim.rule, claim.key
    assert set(decided) <= set(keys)


def test_every_chapter_notebook_decides_its_claims_under_the_label_the_ledger_links_to():
    for name in CHAPTER_MODULES:
        text = open(f"book/{name}.ipynb", encoding="utf-8").read()
        assert f"({cli.claim_label(name)})=" in text and "chapter.decide_claims(" in text, name


def test_a_verdict_follows_its_cases():
    assert paper.verdict_of({"a": True, "b": True}) == "holds"
    assert paper.verdict_of({"a": False, "b": False}) == "fails"
    assert paper.verdict_of({"a": True, "b": False}) == "mixed"
    assert paper.verdict_of({"a": True, "b": None}) == "mixed"
    assert paper.verdict_of({"a": None}) == "not resolved"
    assert paper.verdict_of({}) == "not resolved"
    assert [paper.ordering_case(v) for v in ("holds", "reversed", "not resolved")] == [True, False, None]
    with pytest.raises(ValueError, match="unknown ordering verdict"):
        paper.ordering_case("maybe")


def test_decide_records_the_verdict_for_the_build(tmp_path, monkeypatch):
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv(paper.RESULTS_VAR, str(events))
    monkeypatch.setenv(paper.CHAPTER_VAR, "cross_model")
    row = paper.decide("cross-model-transfer", {"x": True, "y": False, "z": None}, "measured")
    assert row["verdict"] == "mixed" and row["cases"] == "1 held, 1 failed, 1 not resolved"
    record = json.loads(events.read_text())
    assert record["record"] == "claim" and record["claim"] == "cross-model-transfer"
    assert record["failing cases"] == ["y"] and record["unresolved cases"] == ["z"]
    with pytest.raises(ValueError, match="not testable here"):
        paper.decide("table5-alexnet", {"x": True}, "")
    with pytest.raises(KeyError, match="unknown claim"):
        paper.decide("no-such-claim", {"x": True}, "")


REF, SEED, OTHER = "N100-100-10 #0", "N100-100-10 #1", "N200-200-10 #0"


def hand_made_probe(to_seed: float, to_other: float, other_to_seed: float, cos_seed: float, cos_other: float,
                    images: int = 60) -> cross_model.ArchitectureProbe:
    """A probe whose shares fooled and cosines are known: each share is exact over ``images`` images (who
    is fooled alternates, so paired differences vary) and each cosine varies by ±0.05 around its value."""
    def share(p: float) -> list[bool]:
        fooled = round(p * images)
        return [i * fooled // images != (i + 1) * fooled // images for i in range(images)]
    members = (REF, SEED, OTHER)
    sets = {REF: {REF: 1.0, SEED: to_seed, OTHER: to_other}, SEED: {REF: 0.5, SEED: 1.0, OTHER: 0.5},
            OTHER: {REF: 0.5, SEED: other_to_seed, OTHER: 1.0},
            cross_model.NOISE_SET: dict.fromkeys(members, 0.0)}
    fooled = pd.DataFrame({(s, n): share(p) for s, row in sets.items() for n, p in row.items()})
    wobble = 0.05 * torch.linspace(-1, 1, images).numpy()
    cosines = pd.DataFrame({f"{REF} · {SEED}": cos_seed + wobble, f"{REF} · {OTHER}": cos_other - wobble,
                            f"{REF} · {cross_model.RANDOM_DIRECTION}": 0.25 + wobble})
    return cross_model.ArchitectureProbe(fooled, cosines, 0.1, members)


def test_the_papers_own_table2_satisfies_its_claims_and_a_negative_margin_makes_them_mixed():
    table = paper.TABLE2.copy()
    architecture = hand_made_probe(to_seed=1.0, to_other=0.2, other_to_seed=0.2, cos_seed=0.9, cos_other=0.3)
    assert verdicts(cross_model.decide_claims(table, cross_model.margins(table), architecture)) == {
        "cross-model-transfer": "holds", "autoencoder-most-resilient": "holds", "instability-from-architecture": "holds"}
    table.loc["softmax1", "AE400-10"] = 0.0  # below the noise's 0.8 %
    table.loc["N100-100-10", "AE400-10"] = 0.0
    found = cross_model.decide_claims(table, cross_model.margins(table), architecture)
    assert verdicts(found)["cross-model-transfer"] == verdicts(found)["autoencoder-most-resilient"] == "mixed"


def test_architecture_claim_needs_both_a_shared_architecture_and_weights_that_do_not_matter():
    def decided(**shares: float) -> tuple[str, list[bool | None]]:
        probe = hand_made_probe(**shares)
        return cross_model.decide_architecture(probe)["verdict"], list(cross_model.architecture_cases(probe)["case"])

    # another seed fooled as often as the network itself, another architecture far less: holds
    assert decided(to_seed=1.0, to_other=0.2, other_to_seed=0.2, cos_seed=0.9, cos_other=0.3) == (
        "holds", [True, True, True, True])
    # the architecture matters, but another seed's weights escape half the examples: mixed
    assert decided(to_seed=0.5, to_other=0.2, other_to_seed=0.2, cos_seed=0.9, cos_other=0.3) == (
        "mixed", [True, True, True, False])
    # another seed is no closer than another architecture, in any measure: fails
    assert decided(to_seed=0.2, to_other=0.5, other_to_seed=0.5, cos_seed=0.3, cos_other=0.9) == (
        "fails", [False, False, False, False])
    # equal shares and cosines resolve nothing about the architecture
    verdict, cases = decided(to_seed=0.5, to_other=0.5, other_to_seed=0.5, cos_seed=0.6, cos_other=0.6)
    assert verdict == "mixed" and cases == [None, None, None, False]
    assert cross_model.closest_perturbation(hand_made_probe(0.5, 0.2, 0.2, 0.9, 0.3)) == "another seed's"
    assert cross_model.closest_perturbation(hand_made_probe(0.5, 0.2, 0.2, 0.3, 0.9)) == "another architecture's"
    row = cross_model.decide_architecture(hand_made_probe(0.5, 0.2, 0.2, 0.9, 0.3))
    assert "fool itself 100.0 %" in row["measurement"] and "60 images" in row["measurement"]


def test_the_architecture_probe_compares_equal_distortions_on_the_same_images(monkeypatch, tiny):
    from dataclasses import replace

    from intriguing import profiles
    from intriguing.attacks import rms_distortion

    with pytest.raises(ValueError, match="at least two replicates"):
        cross_model.architecture_probe(tiny)
    twice = replace(tiny, replicates={"N100-100-10": 2})
    monkeypatch.setitem(profiles.PROFILES, "tiny", twice)
    probe = cross_model.architecture_probe(twice)
    assert probe.members == (REF, SEED, OTHER) and len(probe.fooled) == twice.min_target_examples
    transfer = cross_model.architecture_transfer(probe)
    assert list(transfer.columns) == list(probe.members) and transfer.index[-1] == cross_model.NOISE_SET
    assert ((transfer >= 0) & (transfer <= 100)).all().all()
    assert list(probe.cosines.columns) == [f"{REF} · {p}" for p in (SEED, OTHER, cross_model.RANDOM_DIRECTION)]
    assert ((probe.cosines.abs() <= 1) | probe.cosines.isna()).all().all()
    cases = cross_model.architecture_cases(probe)
    assert len(cases) == 4 and set(cases["ordering"]) <= {"holds", "reversed", "not resolved"}
    # the probe's sets were rescaled to RMS 0.1 each: every comparison is at the same distortion
    from intriguing.artifacts import adversarial_set, attacked_images
    from intriguing.transfer import amplify
    images = attacked_images("train", twice).subset(slice(0, twice.min_target_examples))
    _, found = adversarial_set("N100-100-10", "train", twice, target_seed=0, examples=len(images), replicate=1)
    scaled = amplify(images.images, found.adversarial, probe.distortion, per_example=True)
    assert rms_distortion(scaled, images.images).tolist() == pytest.approx([0.1] * len(images), rel=1e-4)


def table4_samples(*tables: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(dict(enumerate(tables)), names=[REPLICATE]).swaplevel()


def test_the_papers_own_table4_satisfies_its_claims_and_one_replicate_can_make_them_mixed():
    found = cross_training_set.decide_claims(table4_samples(paper.TABLE4, paper.TABLE4))
    assert set(verdicts(found).values()) == {"holds"}
    weak = paper.TABLE4.copy()
    weak.loc["Distorted for M1", "M2"] = 1.0  # below the noise's 2.4 %, and below M1's amplified set
    weak.loc["Distorted for M1", "M1'"] = 0.5  # now transfers less within P1 than across
    weak.loc["Distorted for M1, amplified", "M2"] = 2.0  # below the noise's 2.7 %
    found = cross_training_set.decide_claims(table4_samples(paper.TABLE4, weak))
    assert set(verdicts(found).values()) == {"mixed"}
    assert found.loc["cross-training-set-transfer", "cases"] == "7 held, 1 failed"


def test_units_claim_fails_only_where_units_win_on_every_network_and_replicate():
    def row(winner):
        return {"mean, units": 0.7, "mean, random": 0.6, "p-value": 1e-3, "more coherent": winner}
    found = pd.DataFrame.from_dict({"Conv": row("random directions"), "AE400-10": row("units"),
                                    "N100-100-10": row("neither")}, orient="index")
    per_replicate = pd.DataFrame.from_dict({("N100-100-10", 0): row("neither"), ("N100-100-10", 1): row("neither")},
                                           orient="index")
    table = units.decide_claims(found, per_replicate)
    assert table.loc["units-not-special", "verdict"] == "mixed"
    assert table.loc["units-not-special", "cases"] == "3 held, 1 failed"  # the replicates stand for N100-100-10
    assert "AE400-10" in table.loc["units-not-special", "measurement"]
    all_units = found.assign(**{"more coherent": "units"})
    assert units.decide_claims(all_units, per_replicate.iloc[:0])["verdict"].item() == "fails"


def test_blind_spot_claims_need_every_image_and_a_distortion_near_the_papers():
    paper_d = paper.TABLE1["Av. min. distortion"]
    samples = pd.DataFrame({"Av. min. distortion": paper_d, "success (%)": 100.0})
    samples.index = pd.MultiIndex.from_arrays([samples.index, [0] * len(samples)], names=["network", REPLICATE])
    accuracy = pd.DataFrame({"unclipped": 51.0, "clipped to [0, 1]": 20.0}, index=paper_d.index)
    assert set(verdicts(blind_spots.decide_claims(samples, accuracy, FULL)).values()) == {"holds"}
    samples.loc[("softmax1", 0), "success (%)"] = 99.9
    accuracy.loc["N200-200-10", "unclipped"] = 51 + FULL.transfer_tolerance_pp + 1
    found = blind_spots.decide_claims(samples, accuracy, FULL)
    assert found.loc["adversarial-near-every-image", "verdict"] == "mixed"
    assert found.loc["noise-far-weaker", "verdict"] == "fails"


def test_the_ordering_claims_with_one_seed_are_not_resolved_and_say_so_without_nan():
    variants = list(adversarial_training.VARIANTS)
    errors = {"weight decay": 1.6, "dropout": 1.3, "pool at the input": 1.5, "pool at hidden layer 1": 1.3,
              "pool at hidden layer 2": 1.25, "pools at every layer": 1.1, "fast gradient sign": 1.4,
              "pools, best reading": 1.05, "weight decay, first recipe": 1.7}
    one = pd.DataFrame({"test error": [errors[v] for v in variants], "training error": 0.0, "distortion": 0.06,
                        "seconds": 1.0}, index=pd.MultiIndex.from_product([variants, [0]], names=["variant", "seed"]))
    order = adversarial_training.orderings(one)
    assert set(order["test"]) == {"one seed: no test"}
    claims = adversarial_training.decide_claims(order, adversarial_training.summary(one))
    assert set(verdicts(claims).values()) == {"not resolved"}
    assert "nan" not in claims.to_string().lower()
    three = pd.concat([one.assign(**{"test error": one["test error"] + d * pd.Series(
        range(len(one)), index=one.index)}).rename(index={0: s}, level="seed") for s, d in enumerate((0.0, 0.001, -0.002))])
    claims = adversarial_training.decide_claims(adversarial_training.orderings(three),
                                                adversarial_training.summary(three))
    assert set(verdicts(claims).values()) == {"holds"}
    reversed_errors = three.assign(**{"test error": 3.2 - three["test error"]})
    claims = adversarial_training.decide_claims(adversarial_training.orderings(reversed_errors),
                                                adversarial_training.summary(reversed_errors))
    assert set(verdicts(claims).values()) == {"fails"}
    assert "hurts less" in claims.loc["higher-layers-more-useful", "measurement"]


def test_spectral_claims_count_each_image_and_each_first_layer():
    ok = AttackResult(adversarial=torch.zeros(3, 3, 4, 4), success=torch.tensor([True, True, True]),
                      distortion=torch.full((3,), 0.004), c=torch.ones(3))
    largest = pd.DataFrame({"first layer's upper bound": [3.0, 0.5, 0.4, 20.0]},
                           index=["Conv", "EfficientNet-Lite0", "N100-100-10", spectral.PAPERS_ALEXNET])
    found = spectral.decide_claims(ok, largest, None)
    assert found.loc["adversarial-near-every-image-imagenet", "verdict"] == "holds"
    assert found.loc["first-layer-unstable", "verdict"] == "mixed"  # the paper's own row is not ours
    assert found.loc["first-layer-unstable", "cases"] == "1 held, 1 failed"  # a fully connected network is no case
    assert "0.40 (N100-100-10)" in found.loc["first-layer-unstable", "measurement"]
    far = AttackResult(adversarial=ok.adversarial, success=torch.tensor([True, False, True]),
                       distortion=torch.full((3,), 0.01), c=ok.c)
    found = spectral.decide_claims(far, largest.iloc[:1], None)
    assert found.loc["adversarial-near-every-image-imagenet", "cases"] == "2 held, 2 failed"
    assert found.loc["first-layer-unstable", "verdict"] == "holds"


def test_the_ledger_lists_every_claim_with_its_verdict_and_links_to_its_chapter(tmp_path):
    events = tmp_path / "events.jsonl"
    record = {"record": "claim", "chapter": "cross_model", "claim": "cross-model-transfer", "section": "",
              "verdict": "holds", "cases": "30 held, 0 failed", "measurement": "margins 1 to 9 pp"}
    comparison = {"chapter": "cross_model", "table": "Table 2", "row": "x", "column": "y", "ours": 1.0,
                  "paper": 1.0, "tolerance": "±1", "verdict": "within tolerance"}
    events.write_text(json.dumps(record) + "\n" + json.dumps(comparison) + "\n")
    results = cli._results(tmp_path / "none.json", events, "full", [])
    assert len(results["comparisons"]) == 1 and results["verdicts"] == {"within tolerance": 1}
    by_key = {c["key"]: c for c in results["claims"]}
    assert [c["key"] for c in results["claims"]] == [c.key for c in paper.CLAIMS]
    assert by_key["cross-model-transfer"]["verdict"] == "holds"
    assert by_key["table5-alexnet"]["verdict"] == "not testable here"
    assert by_key["units-not-special"]["verdict"] == cli.NOT_DECIDED
    text = cli.claims_markdown(results, ["units", "cross_model"])
    assert text.count("\n| ") == len(paper.CLAIMS) + 1
    assert "<claims-cross-model>`" in text and "**holds** | margins 1 to 9 pp |" in text
    assert f"[{paper.claim('units-not-special').claim}](units)" in text  # not decided: the chapter, not its section
    assert f"| {paper.claim('table5-alexnet').claim} |" in text  # its chapter is not in this book: no link
    previous = tmp_path / "results.json"
    previous.write_text(json.dumps(results))
    kept = cli._results(previous, tmp_path / "no-events.jsonl", "full", ["cross_model"])
    assert {c["key"]: c["verdict"] for c in kept["claims"]}["cross-model-transfer"] == "holds"


def test_a_displayed_table_shows_a_dash_never_nan_and_keeps_long_text_whole():
    from intriguing import plots

    frame = pd.DataFrame({"sd": [0.1234, float("nan")], "the claim": ["x" * 120, "y"]}, index=["a", "b"])
    html = plots.table(frame).to_html()
    assert "nan" not in html.lower() and plots.NOT_MEASURED in html and "0.123" in html and "x" * 120 in html


def test_histograms_share_their_bins_and_leave_out_nan():
    from intriguing import plots

    figure = plots.histograms({"a": [0.1, 0.2, float("nan")], "b": [0.5, 0.9]}, "cosine", bins=4)
    axis = figure.axes[0]
    assert [text.get_text() for text in axis.get_legend().get_texts()] == ["a (2)", "b (2)"]
    assert len(axis.patches) == 2 and axis.get_xlim()[0] <= 0.1 and axis.get_xlim()[1] >= 0.9
    with pytest.raises(ValueError, match="at least one finite value"):
        plots.histograms({"a": [float("nan")]}, "cosine")


def test_glued_text_reads_back_as_itself_in_the_prose():
    from IPython.lib.pretty import pretty
    from myst_nb.core.variables import format_plain_text

    from intriguing import plots

    for text in ["60,000", "x", "λ read as 'sum', the book's search", "1e3", "(a, b)", 'say "no"']:
        assert format_plain_text(pretty(plots.Text(text)), "") == text
        assert format_plain_text(pretty(plots.Text(text)), "s") == text
