"""Outfit completion on the sample lake: data, training jobs, FITB evaluation, `complete`, bad input.

The vectors here are a toy space written straight to the store (the hidden style as 4 dims plus
noise, from `sample_truth`), so the tests need no image model; the slow quality test in
tests/test_quality.py uses the real ae space.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from helpers import toy_space
from typer.testing import CliRunner

from flows.cli import app
from flows.evaluation.fitb import auc, evaluate_fitb, exact_chance, fitb_credit
from flows.jobs.complete import CompletionModel, complete
from flows.jobs.ingest import ingest
from flows.jobs.outfits import check_disjoint_outfits, load_catalogue, load_outfits
from flows.jobs.train import train_model
from store import VectorStore, query
from store.vectors import UnknownSpaceError

runner = CliRunner()


@pytest.fixture(scope="module")
def trained_home(sample_root, tmp_path_factory):
    """A lake with the sample Polyvore release, the toy space, umbert v1 and wumbert v1 (short runs)."""
    home = tmp_path_factory.mktemp("outfits") / "home"
    ingest("polyvore", sample_root / "polyvore", home)
    toy_space(home)
    for name in ("umbert", "wumbert"):
        train_model(name, home, space="toy", steps=150, eval_every=50, log=lambda _: None)
    return home


@pytest.fixture
def home_copy(trained_home, tmp_path):
    return shutil.copytree(trained_home, tmp_path / "home")


def test_outfits_never_cross_splits(trained_home):
    for variant in ("nondisjoint", "disjoint"):
        assert check_disjoint_outfits(trained_home, variant) == {"train": 600, "valid": 240, "test": 480}
    overlap = query(trained_home, "SELECT set_id FROM polyvore_outfits GROUP BY variant, set_id HAVING count(DISTINCT split) > 1")
    assert overlap.num_rows == 0


def test_an_outfit_in_two_splits_is_refused(trained_home, monkeypatch):
    import flows.jobs.outfits as outfits

    real = outfits.load_outfits
    monkeypatch.setattr(outfits, "load_outfits", lambda home, variant, split: real(home, variant, split)
                        + ([real(home, variant, "train")[0]] if split == "test" else []))  # fmt: skip
    with pytest.raises(ValueError, match="is in both train and test"):
        outfits.check_disjoint_outfits(trained_home, "nondisjoint")


def test_training_saves_both_models_with_what_they_saw(trained_home):
    for name in ("umbert", "wumbert"):
        metrics = json.loads((trained_home / "models" / name / "v1" / "metrics.json").read_text())
        on = metrics["trained_on"]
        assert on["space"] == "toy" and on["variant"] == "nondisjoint" and on["split"] == "train"
        assert on["train"]["outfits"] == 600 and on["valid"]["outfits"] == 240
        assert metrics["val_rank_percentile"] < 0.5  # better than random ranking on the valid outfits
    learned = VectorStore(trained_home).read("wumbert", ["item_id", "model_version"])
    assert learned.num_rows == 484 and set(learned["model_version"].to_pylist()) == {"v1"}
    assert (trained_home / "models" / "wumbert" / "v1" / "item_ids.json").exists()


def test_fitb_report_has_models_and_baselines(home_copy):
    report = evaluate_fitb(home_copy, "nondisjoint", log=lambda _: None)
    test = report["splits"]["test"]
    methods = test["methods"]
    assert set(methods) == {"random", "mean of context (toy)", "umbert v1", "wumbert v1"}
    # no question repeats an item: the exact chance is 1/4
    assert methods["random"]["fitb_accuracy"] == 0.25 and methods["random"]["compatibility_auc"] == 0.5
    assert methods["random"]["intervals"]["fitb_accuracy"]["exact"] is True
    assert test["questions"]["toy"]["fitb"] == 460 and test["questions"]["toy"]["compatibility"] == 960
    # style is visible in the toy space: learned models beat chance clearly (a style-only scorer expects 0.5)
    assert methods["umbert v1"]["fitb_accuracy"] > 0.35 and methods["mean of context (toy)"]["fitb_accuracy"] > 0.3
    for m in methods.values():
        assert 0 <= m["fitb_accuracy"] <= 1 and 0 <= m["hit_at_10"] <= 1
        for key in ("fitb_accuracy", "compatibility_auc", "hit_at_10", "rank_percentile"):
            iv = m["intervals"][key]
            assert iv["low"] <= m[key] == iv["value"] <= iv["high"] and iv["level"] == 0.95
    fitb_n = methods["umbert v1"]["intervals"]["fitb_accuracy"]
    assert fitb_n["n"] == 460 and 0.04 < fitb_n["high"] - fitb_n["low"] < 0.12  # 460 questions: about +-0.045
    compared = {(c["metric"], c["a"], c["b"]): c for c in test["comparisons"]}
    c = compared[("fitb_accuracy", "umbert v1", "mean of context (toy)")]
    assert c["text"].endswith("separated" if c["separated"] else "within the intervals (no difference shown)")
    assert c["difference"]["value"] == pytest.approx(methods["umbert v1"]["fitb_accuracy"] - methods["mean of context (toy)"]["fitb_accuracy"])
    assert ("compatibility_auc", "umbert v1", "wumbert v1") in compared
    assert (home_copy / "reports" / "fitb_nondisjoint.png").stat().st_size > 5000
    assert json.loads((home_copy / "reports" / "fitb_nondisjoint.json").read_text())["title"] == "Polyvore nondisjoint"
    saved = json.loads((home_copy / "models" / "umbert" / "v1" / "metrics.json").read_text())
    assert saved["eval_fitb"]["nondisjoint"]["test"] == methods["umbert v1"]


def test_fitb_credit_and_exact_chance_by_hand():
    """Ties at the top count as the expected hit over the tied positions; a repeated candidate
    ties with itself. Chance is 1/(distinct items x positions of the answer's item)."""
    cands = [[1, 2, 3, 4], [1, 2, 2, 3], [5, 1, 1, 2], [1, 2, 3, 4], [7, 8, 9, 6]]
    answers = [0, 0, 1, 0, 3]
    scores = np.array([[0.9, 0.1, 0.2, 0.3],  # answer on top: 1
                       [0.1, 0.9, 0.8, 0.2],  # item 2 on top (its first position's score counts at both): 0
                       [0.0, 0.7, 0.1, 0.2],  # the answer's item 1 at positions 1 and 2, on top: 1/2
                       [0.5, 0.5, 0.1, 0.1],  # two items tie at the top: 1/2
                       [0.1, 0.2, 0.3, 0.4]])  # fmt: skip
    assert fitb_credit(scores, cands, answers).tolist() == [1.0, 0.0, 0.5, 0.5, 1.0]
    assert exact_chance(cands, answers) == pytest.approx([1 / 4, 1 / 3, 1 / 6, 1 / 4, 1 / 4])
    # the same by simulation: random scores per distinct item
    rng = np.random.default_rng(0)
    sims = []
    for _ in range(4000):
        table = {i: rng.random() for c in cands for i in c}
        sims.append(fitb_credit(np.array([[table[i] for i in c] for c in cands]), cands, answers))
    assert np.mean(sims, axis=0) == pytest.approx(exact_chance(cands, answers), abs=0.03)


def test_eval_fitb_refuses_a_model_of_another_variant(home_copy):
    """umbert v1 / wumbert v1 were trained on nondisjoint: every disjoint test item is in
    nondisjoint train outfits, so scoring them on disjoint is refused, naming trained_on."""
    res = runner.invoke(app, ["eval", "fitb", "--variant", "disjoint", "--home", str(home_copy)])
    output = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert "trained on nondisjoint, scored on disjoint" in output and "trained_on: dataset polyvore, variant nondisjoint" in output
    assert "--allow-cross-variant" in output and not (home_copy / "reports" / "fitb_disjoint.json").exists()
    res = runner.invoke(app, ["eval", "fitb", "--variant", "disjoint", "--allow-cross-variant", "--home", str(home_copy)])
    assert res.exit_code == 0, res.output
    assert "cross-variant: umbert v1 trained on nondisjoint, scored on disjoint" in " ".join(res.output.split())
    report = json.loads((home_copy / "reports" / "fitb_disjoint.json").read_text())
    assert report["title"].startswith("Polyvore disjoint (cross-variant: umbert v1 trained on nondisjoint, scored on disjoint")
    assert report["cross_variant"] == {"umbert v1": "trained on nondisjoint, scored on disjoint",
                                       "wumbert v1": "trained on nondisjoint, scored on disjoint"}  # fmt: skip
    saved = json.loads((home_copy / "models" / "umbert" / "v1" / "metrics.json").read_text())
    assert saved["eval_fitb"]["disjoint"]["test"]["cross_variant"] == "trained on nondisjoint, scored on disjoint"


def test_eval_refuses_a_model_trained_on_other_splits(home_copy):
    """The lake re-ingested since training (here: the split digests the model kept differ): its
    held-out outfits may be its training outfits, so `eval fitb` and `eval umbert` refuse it."""
    from flows.evaluation import evaluate_kind
    from flows.jobs.outfits import CrossVariantError, split_sets

    path = home_copy / "models" / "umbert" / "v1" / "metrics.json"
    metrics = json.loads(path.read_text())
    assert metrics["trained_on"]["split_sets"] == split_sets(home_copy, "nondisjoint")
    metrics["trained_on"]["split_sets"]["test"] = "0" * 16
    path.write_text(json.dumps(metrics))
    with pytest.raises(CrossVariantError, match="trained on other nondisjoint splits than the lake holds now.*trained_on: "):
        evaluate_fitb(home_copy, "nondisjoint", models=["umbert"], log=lambda _: None)
    with pytest.raises(CrossVariantError, match="umbert/v1: trained on other nondisjoint splits"):
        evaluate_kind("umbert", home_copy, log=lambda _: None)
    report = evaluate_fitb(home_copy, "nondisjoint", models=["umbert"], splits=("test",), allow_cross_variant=True, log=lambda _: None)
    assert "cross-variant: umbert v1 trained on other nondisjoint splits" in report["title"]


def test_auc():
    assert auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5
    assert auc([0.3, 0.1], [1, 1]) is None


def _test_outfit(home):
    _, items = load_outfits(home, "nondisjoint", "test")[0]
    rows = query(home, "SELECT item_id, semantic_category FROM polyvore_items").to_pylist()
    return items, {r["item_id"]: r["semantic_category"] for r in rows}


@pytest.mark.parametrize("model", ["umbert", "wumbert"])
def test_complete_returns_items_of_the_category_without_the_context(trained_home, model):
    items, cats = _test_outfit(trained_home)
    context, missing = items[:-1], cats[items[-1]]
    result = complete(trained_home, context, missing, k=7, model=model)
    assert len(result.rows) == 7 and {r["semantic_category"] for r in result.rows} == {missing}
    assert not set(context) & {r["item_id"] for r in result.rows}
    assert result.space == ("toy" if model == "umbert" else "wumbert")
    assert [r["distance"] for r in result.rows] == sorted(r["distance"] for r in result.rows)
    assert result.gallery.exists() and result.gallery.read_text().count("<figure>") == len(context) + 7


def test_complete_bad_input(home_copy):
    items, cats = _test_outfit(home_copy)
    model = CompletionModel(home_copy, "umbert")
    with pytest.raises(KeyError, match="not in the catalogue.*nope-1"):
        model.complete([items[0], "nope-1"], "shoes")
    present = cats[items[0]]
    with pytest.raises(ValueError, match=f"already has a {present} item"):
        model.complete(items[:2], present)
    with pytest.raises(ValueError, match="unknown categories.*'capes'"):
        model.complete(items[:2], "capes")
    missing = cats[items[-1]]
    VectorStore(home_copy).delete("toy", f"semantic_category = '{missing}'")
    with pytest.raises(ValueError, match=f"no item of category '{missing}'"):
        model.complete(items[:-1], missing)
    VectorStore(home_copy).db.drop_table("vectors_toy")
    with pytest.raises(UnknownSpaceError, match="atelier embed toy"):
        CompletionModel(home_copy, "umbert")
    with pytest.raises(UnknownSpaceError, match="atelier embed toy"):
        load_catalogue(home_copy, "toy")


def test_cli_train_eval_complete(home_copy):
    res = runner.invoke(app, ["train", "umbert", "--space", "toy", "--steps", "20", "--objective", "mse",
                              "--home", str(home_copy), "--no-prefect"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "umbert v2: mse objective, space toy, nondisjoint outfits: valid rank percentile" in " ".join(res.output.split())
    assert json.loads((home_copy / "models" / "umbert" / "v2" / "config.json").read_text())["objective"] == "mse"
    res = runner.invoke(app, ["eval", "fitb", "--model", "umbert", "--home", str(home_copy)])
    assert res.exit_code == 0, res.output
    output = " ".join(res.output.split())
    assert "umbert v2" in output and "mean of" in output and "FITB accuracy" in output  # rich wraps cells
    items, cats = _test_outfit(home_copy)
    res = runner.invoke(app, ["complete", "--items", ",".join(items[:-1]), "--missing", cats[items[-1]], "-k", "3",
                              "--home", str(home_copy)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "gallery:" in res.output and res.output.count(cats[items[-1]]) >= 1
    res = runner.invoke(app, ["complete", "--items", "nope", "--missing", "shoes", "--home", str(home_copy)])
    assert res.exit_code == 1 and "not in the catalogue" in res.output


def test_train_without_vectors_says_what_to_run(sample_root, tmp_path):
    home = tmp_path / "home"
    ingest("polyvore", sample_root / "polyvore", home)
    with pytest.raises(UnknownSpaceError, match="atelier embed ae"):
        train_model("umbert", home, space="ae", steps=5)


def test_catalogue_vectors_follow_their_ids_across_chunks(trained_home):
    """load_catalogue reorders a many-chunk vector column in one copy: each row's vector is its
    item's, in item_id order and in a given ``order`` first."""
    import pyarrow as pa

    from flows.jobs.outfits import _vectors_in_order

    column = pa.chunked_array([pa.FixedSizeListArray.from_arrays(pa.array(np.arange(k, k + n * 2, dtype=np.float32)), 2)
                               for k, n in ((0, 3), (100, 1), (200, 2))])  # fmt: skip
    perm = np.array([4, 0, 3, 5, 1, 2])
    assert _vectors_in_order(column, perm).tolist() == np.asarray(column.combine_chunks().flatten()).reshape(-1, 2)[perm].tolist()
    stored = VectorStore(trained_home).read("toy", ["item_id", "vector"]).to_pylist()
    by_id = {r["item_id"]: r["vector"] for r in stored}
    order = sorted(by_id)[::-7][:5]
    for catalogue, first in ((load_catalogue(trained_home, "toy"), []), (load_catalogue(trained_home, "toy", order=order), order)):
        assert catalogue.item_ids == first + sorted(set(by_id) - set(first))
        assert np.allclose(catalogue.vectors, np.array([by_id[i] for i in catalogue.item_ids], dtype=np.float32))
