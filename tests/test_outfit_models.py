"""umBERT / WumBERT modules, objectives, batching and the training loop (tiny tensors, CPU)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from models import OutfitConfig, OutfitData, UmBERT, WumBERT, load_pretrained, predict_missing, train_outfit_model
from models.outfit import contrastive_loss, mse_loss
from models.outfit_train import hits, outfit_batch, rank_percentile, rank_ties
from models.train import TrainConfig

DIM = 8


def _data(n_items=40, n_outfits=30, seed=0) -> OutfitData:
    g = torch.Generator().manual_seed(seed)
    vectors = torch.randn(n_items, DIM, generator=g)
    categories = torch.arange(n_items) % 4
    outfits = []
    for _ in range(n_outfits):
        # one item of each of 3 categories: rows c, c + 4, ... are category c
        outfits.append(torch.tensor([int(torch.randint(10, (1,), generator=g)) * 4 + c for c in range(3)]))
    return OutfitData(vectors, categories, outfits)


def _config(**kw) -> OutfitConfig:
    return OutfitConfig(item_dim=DIM, categories=("a", "b", "c", "d"), d_model=16, n_heads=2, ff_dim=32, **kw)


def _inputs(data: OutfitData, slots=(0, 2)):
    batch = outfit_batch(data, data.outfits[:2], torch.tensor(slots))
    return batch, (batch["vectors"], batch["categories"], batch["masked"], batch["padding"], batch["model_rows"])


@pytest.mark.parametrize("kind", ["umbert", "wumbert"])
def test_save_load_same_output(tmp_path, kind):
    torch.manual_seed(0)
    data = _data()
    model = UmBERT(_config()) if kind == "umbert" else WumBERT(_config(learn_items=True, n_items=40))
    if kind == "wumbert":
        model.item_ids = [f"i{k}" for k in range(40)]
        with torch.no_grad():
            model.delta.normal_()  # a trained-looking table, so a lost delta would show
    model.eval()
    _, args = _inputs(data)
    before = model(*args)
    model.save_pretrained(tmp_path / kind)
    loaded = load_pretrained(tmp_path / kind)
    assert type(loaded) is type(model) and loaded.item_ids == model.item_ids
    assert torch.equal(loaded(*args), before)


def test_wumbert_needs_learned_rows():
    with pytest.raises(ValueError, match="learn_items"):
        WumBERT(_config())


def test_slot_order_never_matters_and_the_masked_vector_never_leaks():
    torch.manual_seed(0)
    model = UmBERT(_config()).eval()
    data = _data()
    batch, args = _inputs(data, slots=(1, 1))
    out = model(*args)
    perm = torch.tensor([2, 0, 1])  # reorder the items of every outfit
    permuted = [a[:, perm] if a.dim() >= 2 else a for a in args]
    assert torch.allclose(model(*permuted), out[:, perm], atol=1e-6)
    changed = [a.clone() for a in args]
    changed[0][:, 1] = 100.0  # the masked items' own vectors
    assert torch.allclose(model(*changed)[:, 1], out[:, 1], atol=1e-6)
    assert torch.allclose(model(*changed), out, atol=1e-6)  # it enters nowhere
    visible = [a.clone() for a in args]
    visible[0][:, 0] = -visible[0][:, 0]
    assert not torch.allclose(model(*visible)[:, 1], out[:, 1], atol=1e-3)  # the context does count


def test_mask_token_is_learned():
    model = UmBERT(_config())
    assert any(p is model.mask_token for p in model.parameters())
    _, args = _inputs(_data())
    model(*args)[args[2]].sum().backward()
    assert model.mask_token.grad is not None and model.mask_token.grad.abs().sum() > 0


def test_batch_targets_come_from_the_same_outfit():
    data = _data()
    outfits = [data.outfits[3], data.outfits[7], torch.tensor([5, 6])]
    batch = outfit_batch(data, outfits, torch.tensor([2, 0, 1]))
    for i, o in enumerate(outfits):
        assert batch["rows"][i, : len(o)].tolist() == o.tolist()
        assert torch.equal(batch["vectors"][i, : len(o)], data.vectors[o])
    assert batch["padding"][2].tolist() == [False, False, True]
    assert batch["masked"].nonzero().tolist() == [[0, 2], [1, 0], [2, 1]]


def test_losses_look_at_the_masked_slot_and_its_category_only():
    torch.manual_seed(0)
    targets = torch.nn.functional.normalize(torch.randn(2, 3, DIM), dim=-1)
    categories = torch.tensor([[0, 1, 2], [0, 1, 3]])
    masked = torch.tensor([[True, False, False], [False, False, False]])
    padding = torch.zeros(2, 3, dtype=torch.bool)
    rows = torch.tensor([[0, 1, 2], [3, 4, 5]])
    pred = torch.nn.functional.normalize(torch.randn(2, 3, DIM), dim=-1)
    base_mse = mse_loss(pred, targets, masked)
    base_nce = contrastive_loss(pred, targets, masked, categories, padding, rows, 0.1)
    other = pred.clone()
    other[0, 1:] = 0.0  # unmasked predictions
    assert torch.equal(mse_loss(other, targets, masked), base_mse)
    moved = targets.clone()
    moved[1, 1:] = torch.nn.functional.normalize(torch.randn(2, DIM), dim=-1)  # items of other categories
    assert torch.allclose(contrastive_loss(pred, moved, masked, categories, padding, rows, 0.1), base_nce)
    moved[1, 0] = -targets[0, 0]  # the one same-category negative decides the loss
    assert not torch.allclose(contrastive_loss(pred, moved, masked, categories, padding, rows, 0.1), base_nce)
    exact = targets.clone()
    assert mse_loss(exact, targets, masked) == 0
    # a copy of the same catalogue item elsewhere in the batch is not a negative
    dup_rows = rows.clone()
    dup_rows[1, 0] = 0
    same = targets.clone()
    same[1, 0] = targets[0, 0]
    loss = contrastive_loss(targets, same, masked, categories, padding, dup_rows, 0.1)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_rank_percentile():
    categories = torch.tensor([0, 0, 0, 1, 0])
    scores = torch.tensor([[0.9, 0.5, 0.1, 2.0, 0.7]])  # row 3 is another category
    rank, pct = rank_percentile(scores, torch.tensor([4]), categories)
    assert rank.tolist() == [1] and pct.item() == pytest.approx(1 / 3)
    rank, _ = rank_percentile(scores, torch.tensor([4]), categories, exclude=[torch.tensor([0])])
    assert rank.tolist() == [0]


def test_rank_ties_count_as_the_expected_position():
    """Three rows tie for the top with the true row: expected rank 1 (of 0, 1, 2), hit@1 1/3,
    hit@2 2/3, hit@3 1 (models.ranking's rule; ties used to count against the true row)."""
    categories = torch.tensor([0, 0, 0, 0, 1])
    scores = torch.tensor([[0.5, 0.5, 0.5, 0.1, 0.9]])
    rank, pct = rank_percentile(scores, torch.tensor([0]), categories)
    assert rank.tolist() == [1.0] and pct.item() == pytest.approx(1 / 3)
    assert [hits(scores, torch.tensor([0]), categories, k).item() for k in (1, 2, 3)] == pytest.approx([1 / 3, 2 / 3, 1.0])


def test_training_learns_and_resumes_exactly(tmp_path):
    data = _data(n_outfits=60)
    cfg = TrainConfig(steps=30, lr=3e-3, min_lr=3e-4, warmup_steps=3, batch_size=16, eval_every=10, device="cpu", seed=1)

    def run(ckpt, stop=None):
        torch.manual_seed(0)
        model = UmBERT(_config())
        metrics = train_outfit_model(model, data, data, dataclasses.replace(cfg, stop_at_step=stop), checkpoint_dir=ckpt,
                                     keep_best=False)
        return model, metrics

    full, metrics = run(tmp_path / "a")
    assert metrics["train_loss_last"] < metrics["train_loss_first"]
    assert metrics["steps"] == 30 and metrics["outfits_per_second"] > 0
    run(tmp_path / "b", stop=10)
    resumed, again = run(tmp_path / "b")
    assert again["resumed_from_step"] == 10
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_predict_missing_shapes():
    torch.manual_seed(0)
    model = UmBERT(_config())
    data = _data()
    pred = predict_missing(model, data, data.outfits[:5], torch.tensor([0, 1, 2, 0, 1]))
    assert pred.shape == (5, DIM)
    assert torch.allclose(pred.norm(dim=1), torch.ones(5), atol=1e-5)


def test_evaluation_in_query_chunks_equals_one_pass():
    """evaluate_outfits scores a bounded number of queries at a time (memory independent of the
    catalogue size): any chunking gives the same figures as scoring every query at once."""
    from models.outfit_train import evaluate_outfits

    torch.manual_seed(0)
    model, data = UmBERT(_config()).eval(), _data()
    one_pass = evaluate_outfits(model, data, cells=10**9)
    for cells in (40, 40 * 7, 1):  # one query, seven queries, one query (cells below N) at a time
        assert evaluate_outfits(model, data, cells=cells) == one_pass


@pytest.mark.parametrize("cells", [1, 7, 10**9])
def test_rank_in_categories_equals_rank_ties_over_the_whole_catalogue(cells):
    """Scoring each query against its category only (one category's vectors at a time) gives the
    counts of `rank_ties` over the full query x catalogue matrix: ties (identical vectors, exact
    small-integer scores), context items of the category left out, a context item equal to the
    true row kept, other categories' context items ignored."""
    from models.outfit_train import rank_in_categories

    g = torch.Generator().manual_seed(3)
    n, dim = 60, 4
    vectors = torch.randint(-2, 3, (n, dim), generator=g).float()
    vectors[10:14] = vectors[2]  # exact duplicates: ties with row 2 (same category or not)
    categories = torch.randint(0, 3, (n,), generator=g)
    categories[10:13], categories[13] = categories[2], (categories[2] + 1) % 3  # three tie in row 2's category, one elsewhere
    pred = torch.randint(-2, 3, (25, dim), generator=g).float()
    true_rows = torch.randint(0, n, (25,), generator=g)
    true_rows[0] = 2
    context = [torch.randint(0, n, (4,), generator=g) for _ in range(25)]
    context[0] = torch.tensor([2, 10, 10, 13])  # the true row itself, a repeated duplicate, another category's duplicate
    expected = rank_ties(pred @ vectors.T, true_rows, categories, context)
    got = rank_in_categories(pred, true_rows, categories, lambda rows: vectors[rows], context, cells=cells)
    assert expected[1][0] == 2 and expected[2][0] == (categories == categories[2]).sum() - 1  # rows 11, 12 tie; 10 left out
    for a, b in zip(got, expected):
        assert a.tolist() == b.tolist()
    assert [a.tolist() for a in rank_in_categories(pred, true_rows, categories, lambda rows: vectors[rows], cells=cells)] == \
        [b.tolist() for b in rank_ties(pred @ vectors.T, true_rows, categories)]


def test_evaluation_figures_are_rank_percentile_and_hits_of_the_masked_items():
    """evaluate_outfits ranks each masked item once for both figures: they equal the means of
    `rank_percentile` and `hits` over every (outfit, slot) query, computed apart."""
    from models.outfit_train import catalogue_vectors, evaluate_outfits, hits, rank_percentile

    torch.manual_seed(1)
    model, data = UmBERT(_config()).eval(), _data()
    got = evaluate_outfits(model, data)
    expanded = [o for o in data.outfits for _ in range(len(o))]
    slots = torch.tensor([s for o in data.outfits for s in range(len(o))])
    true_rows = torch.stack([o[s] for o, s in zip(expanded, slots.tolist())])
    context = [torch.cat([o[:s], o[s + 1:]]) for o, s in zip(expanded, slots.tolist())]
    with torch.no_grad():
        scores = predict_missing(model, data, expanded, slots) @ catalogue_vectors(model, data).T
    assert got["val_rank_percentile"] == pytest.approx(rank_percentile(scores, true_rows, data.categories, context)[1].mean().item())
    assert got["val_hit_at_10"] == pytest.approx(hits(scores, true_rows, data.categories, 10, context).mean().item())
    assert got["n_val_items"] == len(expanded)
