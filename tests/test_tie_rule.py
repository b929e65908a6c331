"""The tie rule of retrieval metrics (issue 15, item 7): a tie at rank r counts as the expected hit
over the tied positions (`models.ranking`), in CLIP's R@K and in neighbour precision@K; every
expected value below is computed by hand in the comments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.clip_train import recall_from_similarity, retrieval_recall
from models.ranking import expected_hit, expected_precision, hit_at_k, target_tie_counts, tie_counts

# rows = queries (images), columns = gallery (texts); the right answer is the diagonal
S = [[0.9, 0.9, 0.1],
     [0.5, 0.5, 0.5],
     [0.9, 0.8, 0.8]]  # fmt: skip
# row 0: own 0.9, 0 above, 1 tied (col 1): R@1 = min(1-0, 2)/2 = 1/2, R@2 = 2/2 = 1
# row 1: own 0.5, 0 above, 2 tied:          R@1 = 1/3, R@2 = 2/3, R@3 = 1
# row 2: own 0.8, 1 above (col 0), 1 tied:  R@1 = max(1-1, 0)/2 = 0, R@2 = 1/2, R@3 = 1
# mean: R@1 = (1/2 + 1/3 + 0)/3 = 5/18; R@2 = (1 + 2/3 + 1/2)/3 = 13/18; R@3 = 1
# (the old rule "ties count half in the rank" gave ranks 0.5, 1.0, 1.5: R@1 = 1/3, R@2 = 1)
# columns as queries (S.T): col 0 [0.9, 0.5, 0.9] own 0.9, 0 above, 1 tied: R@1 1/2, R@2 1
#                           col 1 [0.9, 0.5, 0.8] own 0.5, 2 above, 0 tied: R@1 0, R@2 0, R@3 1
#                           col 2 [0.1, 0.5, 0.8] own 0.8, 0 above:         R@1 1
# mean: R@1 = (1/2 + 0 + 1)/3 = 1/2; R@2 = (1 + 0 + 1)/3 = 2/3; R@3 = 1


def test_counts_and_hits_by_hand():
    greater, ties = target_tie_counts(np.array(S), None)
    assert greater.tolist() == [0, 0, 1] and ties.tolist() == [1, 2, 1]
    assert hit_at_k(greater, ties, 1) == pytest.approx([1 / 2, 1 / 3, 0])
    assert hit_at_k(greater, ties, 2) == pytest.approx([1, 2 / 3, 1 / 2])


def test_clip_recall_counts_a_tie_at_the_top_as_the_expected_hit():
    r = recall_from_similarity(torch.tensor(S), ks=(1, 2, 3))
    assert r["i2t_r1"] == pytest.approx(5 / 18) and r["i2t_r2"] == pytest.approx(13 / 18) and r["i2t_r3"] == 1.0
    assert r["t2i_r1"] == pytest.approx(1 / 2) and r["t2i_r2"] == pytest.approx(2 / 3) and r["t2i_r3"] == 1.0
    assert r["random_r1"] == pytest.approx(1 / 3)
    # 4 identical pairs: everything ties; R@1 = 1/4 (the old rule said 0), R@2 = 2/4
    ones = torch.ones(4, 2) / 2**0.5
    tied = retrieval_recall(ones, ones, ks=(1, 2, 5))
    assert tied["t2i_r1"] == pytest.approx(0.25) and tied["t2i_r2"] == pytest.approx(0.5) and tied["t2i_r5"] == 1.0


def test_group_hit_by_hand():
    # one query; scores 0.7 0.7 0.7 0.9, relevant: the first two. 1 item above the best relevant
    # score, 3 tied at it, 2 of them relevant. K=1: no tied place in the top 1 -> 0.
    # K=2: one tied place, 2 of 3 candidates for it are relevant -> 2/3. K=3: two places,
    # 1 - C(1,2)/C(3,2) = 1.
    g, t, r = tie_counts([[0.7, 0.7, 0.7, 0.9]], [[True, True, False, False]])
    assert (g.tolist(), t.tolist(), r.tolist()) == ([1], [3], [2])
    assert [float(expected_hit(g, t, r, k)[0]) for k in (1, 2, 3)] == pytest.approx([0, 2 / 3, 1])
    # one relevant item: the same as hit_at_k (tied = ties + 1)
    assert expected_hit([0, 1], [3, 2], [1, 1], 2) == pytest.approx(hit_at_k([0, 1], [2, 1], 2))
    # a candidate mask leaves the query out; no relevant candidate -> 0
    g, t, r = tie_counts([[1.0, 0.5, 0.5]], [[True, True, False]], candidates=[[False, True, True]])
    assert (g.tolist(), t.tolist(), r.tolist()) == ([0], [2], [1]) and float(expected_hit(g, t, r, 1)[0]) == 0.5
    assert float(expected_hit(*tie_counts([[0.3, 0.2]], [[False, False]]), 5)[0]) == 0.0


def test_precision_at_k_with_ties_by_hand():
    # distances 0.1 0.2 0.2 0.2 0.5, same label: yes no yes no yes
    # k=1: the nearest is a yes -> 1. k=2: 1 yes nearer + 1 place among the three tied at 0.2
    # (1 yes of 3) -> (1 + 1/3)/2 = 2/3. k=4: (1 + 3 * 1/3)/4 = 1/2. k=9 (> 5 items): 3/5
    d, same = [0.1, 0.2, 0.2, 0.2, 0.5], [True, False, True, False, True]
    assert [expected_precision(d, same, k) for k in (1, 2, 4, 9)] == pytest.approx([1, 2 / 3, 1 / 2, 3 / 5])
