"""Hand-computed checks of the harness's own arithmetic: label maps, schedule, splits, run ids."""
import math

import numpy as np
import pytest
import torch

from benchmark.harness.plan import RunConfig
from benchmark.data.base import MaxPoolLabelMap, SubsetLabelMap, disjoint_split
from benchmark.engine import accuracy
from benchmark.engine.loop import warmup_cosine

LOGITS = torch.tensor([[0.1, 0.9, 0.3, 0.8], [0.7, 0.2, 0.6, 0.1], [0.0, 0.5, 0.9, 0.4]])


def test_subset_label_map_picks_and_reorders_logits():
    mapped = SubsetLabelMap([2, 0])(LOGITS)
    assert torch.equal(mapped, torch.tensor([[0.3, 0.1], [0.6, 0.7], [0.9, 0.0]]))
    # argmax within the subset: rows -> class 0 (=2), 1 (=0), 0 (=2); targets [0, 1, 1] -> 2/3
    assert accuracy(mapped.argmax(1), torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)


def test_max_pool_label_map_takes_the_max_over_each_group():
    mapped = MaxPoolLabelMap([[0, 2], [1, 3]])(LOGITS)
    assert torch.equal(mapped, torch.tensor([[0.3, 0.9], [0.7, 0.2], [0.9, 0.5]]))
    with pytest.raises(ValueError):
        MaxPoolLabelMap([[0], []])


def test_warmup_cosine_schedule():
    assert [warmup_cosine(s, 10, 2) for s in (0, 1)] == [0.5, 1.0]
    assert warmup_cosine(2, 10, 2) == 1.0
    assert warmup_cosine(6, 10, 2) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert warmup_cosine(10, 10, 2) == pytest.approx(0.0)


def test_disjoint_split_is_seeded_and_disjoint():
    rest, hold = disjoint_split(100, 10, seed=3)
    assert len(hold) == 10 and len(rest) == 90 and not set(rest) & set(hold)
    assert np.array_equal(hold, disjoint_split(100, 10, seed=3)[1])
    assert not np.array_equal(hold, disjoint_split(100, 10, seed=4)[1])


def test_run_id_is_a_hash_of_the_config():
    cfg = RunConfig("fmnist-c", "ft", "lite0", 0, 64, {"lr": 0.01})
    assert cfg.run_id == RunConfig("fmnist-c", "ft", "lite0", 0, 64, {"lr": 0.01}).run_id
    assert cfg.run_id.startswith("ft-")
    assert cfg.run_id != RunConfig("fmnist-c", "ft", "lite0", 1, 64, {"lr": 0.01}).run_id
    assert cfg.run_id != RunConfig("fmnist-c", "ft", "lite0", 0, 64, {"lr": 0.02}).run_id
