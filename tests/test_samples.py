"""The sample generator: deterministic, in the released formats, and following its hidden rules."""

from __future__ import annotations

import csv
import json

from helpers import tree_digest

from etl.samples import write_samples
from etl.samples.polyvore import STYLES, sample_truth


def test_same_seed_same_bytes_other_seed_other_bytes(sample_root, tmp_path):
    write_samples(tmp_path / "a", seed=0, image_size=64)
    write_samples(tmp_path / "b", seed=1, image_size=64)
    assert tree_digest(tmp_path / "a") == tree_digest(sample_root)
    assert tree_digest(tmp_path / "b") != tree_digest(sample_root)


def test_polyvore_release_has_every_released_file(sample_root):
    root = sample_root / "polyvore"
    for name in ("polyvore_item_metadata.json", "polyvore_outfit_titles.json", "categories.csv"):
        assert (root / name).is_file()
    for variant in ("nondisjoint", "disjoint"):
        for split in ("train", "valid", "test"):
            for name in (f"{split}.json", f"compatibility_{split}.txt", f"fill_in_blank_{split}.json"):
                assert (root / variant / name).is_file(), f"{variant}/{name}"
    meta = json.loads((root / "polyvore_item_metadata.json").read_text())
    assert len(meta) == len(list((root / "images").glob("*.jpg")))
    rec = next(iter(meta.values()))
    assert {"semantic_category", "category_id", "title", "url_name", "description", "catgeories", "related"} <= set(rec)
    assert len({r["semantic_category"] for r in meta.values()}) == 11


def test_polyvore_outfits_follow_the_style_rules(sample_root):
    """Every outfit's items take their colours from one hidden style's palette; FITB answers
    share the question's set and the distractors come from other outfits."""
    root = sample_root / "polyvore"
    meta = json.loads((root / "polyvore_item_metadata.json").read_text())
    colour_style = {c: s for s, style in STYLES.items() for c in style.palette}
    for variant in ("nondisjoint", "disjoint"):
        outfits = json.loads((root / variant / "train.json").read_text())
        for o in outfits:
            styles = {colour_style[meta[it["item_id"]]["title"].split()[0]] for it in o["items"]}
            assert len(styles) == 1, o["set_id"]
        for q in json.loads((root / variant / "fill_in_blank_test.json").read_text()):
            qset = q["question"][0].rsplit("_", 1)[0]
            assert len(q["answers"]) == 4
            assert sum(a.rsplit("_", 1)[0] == qset for a in q["answers"]) == 1


def test_fitb_candidates_are_four_items_of_the_category_one_distractor_of_the_style(sample_root):
    """No item twice among a question's candidates; every distractor has the blank's category;
    exactly one has the answer's hidden style (so a style-only scorer expects 0.5, chance 0.25)."""
    root = sample_root / "polyvore"
    truth = sample_truth(0, 1)
    for variant in ("nondisjoint", "disjoint"):
        for split in ("train", "valid", "test"):
            outfits = {o["set_id"]: {it["index"]: it["item_id"] for it in o["items"]}
                       for o in json.loads((root / variant / f"{split}.json").read_text())}  # fmt: skip
            questions = json.loads((root / variant / f"fill_in_blank_{split}.json").read_text())
            assert len(questions) > 0.9 * len(outfits)
            for q in questions:
                qset = q["question"][0].rsplit("_", 1)[0]
                items = [outfits[t.rsplit("_", 1)[0]][int(t.rsplit("_", 1)[1])] for t in q["answers"]]
                answer = items[[t.rsplit("_", 1)[0] for t in q["answers"]].index(qset)]
                assert len(set(items)) == 4, (variant, split, q)
                assert {truth[i]["category"] for i in items} == {truth[answer]["category"]}
                assert sum(truth[i]["style"] == truth[answer]["style"] for i in items) == 2, (variant, split, q)


def test_fitb_distractors_are_as_popular_as_answers(sample_root):
    """Distractors are drawn by occurrence, as answers are: the same-style distractor's item is in
    about as many outfits of the split as the answer's (drawn uniformly by item it was in 0.68
    times as many on nondisjoint, a cue for a model that learns each item)."""
    from collections import Counter

    root = sample_root / "polyvore"
    truth = sample_truth(0, 1)
    answers = distractors = 0
    for split in ("train", "valid", "test"):
        outfits = {o["set_id"]: {it["index"]: it["item_id"] for it in o["items"]}
                   for o in json.loads((root / "nondisjoint" / f"{split}.json").read_text())}  # fmt: skip
        count = Counter(i for o in outfits.values() for i in o.values())
        for q in json.loads((root / "nondisjoint" / f"fill_in_blank_{split}.json").read_text()):
            qset = q["question"][0].rsplit("_", 1)[0]
            items = [(t.rsplit("_", 1)[0], outfits[t.rsplit("_", 1)[0]][int(t.rsplit("_", 1)[1])]) for t in q["answers"]]
            answer = next(i for s, i in items if s == qset)
            same = next(i for s, i in items if s != qset and truth[i]["style"] == truth[answer]["style"])
            answers, distractors = answers + count[answer], distractors + count[same]
    assert 0.9 < distractors / answers < 1.1


def test_no_outfit_twice_in_a_variant(sample_root):
    """The same item set is never drawn twice in a variant (check_disjoint_outfits refuses one in two splits)."""
    root = sample_root / "polyvore"
    for variant in ("nondisjoint", "disjoint"):
        sets = [frozenset(it["item_id"] for it in o["items"])
                for split in ("train", "valid", "test") for o in json.loads((root / variant / f"{split}.json").read_text())]  # fmt: skip
        assert len(sets) == len(set(sets)) == 1320


def test_disjoint_variant_splits_share_no_items(sample_root):
    root = sample_root / "polyvore" / "disjoint"
    items = {s: {it["item_id"] for o in json.loads((root / f"{s}.json").read_text()) for it in o["items"]}
             for s in ("train", "valid", "test")}  # fmt: skip
    assert not items["train"] & items["test"] and not items["train"] & items["valid"]


def test_deepfashion_csv_has_missing_values_and_a_duplicate(sample_root):
    with open(sample_root / "deepfashion" / "attributes.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["filename", "neck", "sleeve_length", "pattern"]
    assert any(r["neck"] == "#N/A" for r in rows)
    names = [r["filename"] for r in rows]
    assert len(names) - len(set(names)) == 1
    lines = (sample_root / "deepfashion" / "Anno" / "list_attr_img.txt").read_text().splitlines()
    assert int(lines[0]) == len(lines) - 2
