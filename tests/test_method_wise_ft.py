import pytest
import torch

from benchmark.errors import BenchmarkError
from method_smoke import run_smoke, variants
from methods.wise_ft import WiseFT, interpolate

THETA0 = {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "bn.num_batches_tracked": torch.tensor(0)}
THETA = {"w": torch.tensor([[3.0, 2.0], [-1.0, 0.5]]), "bn.num_batches_tracked": torch.tensor(7)}


def test_endpoints_are_exact_and_half_is_the_midpoint():
    assert torch.equal(interpolate(THETA0, THETA, 0.0)["w"], THETA0["w"])
    assert torch.equal(interpolate(THETA0, THETA, 1.0)["w"], THETA["w"])
    torch.testing.assert_close(interpolate(THETA0, THETA, 0.5)["w"], torch.tensor([[2.0, 2.0], [1.0, 2.25]]))


def test_integer_buffers_come_from_the_fine_tuned_model_and_nothing_aliases_it():
    out = interpolate(THETA0, THETA, 0.0)
    assert out["bn.num_batches_tracked"].item() == 7
    assert all(out[k].data_ptr() not in (THETA[k].data_ptr(), THETA0[k].data_ptr()) for k in out)


def test_alpha_grids():
    assert WiseFT.hparams_for("imagenet")["alphas"] == tuple(i / 10 for i in range(11))
    assert WiseFT.hparams_for("fmnist-c")["alphas"] == (0.0, 0.5, 1.0)


def test_one_variant_per_alpha_through_the_harness_and_alpha_zero_is_the_probe(tmp_path):
    record = run_smoke("wise-ft", tmp_path, alphas=(0.0, 0.5, 1.0))
    assert variants(record) == {"wise-ft@0", "wise-ft@0.5", "wise-ft@1"}
    lp = run_smoke("lp", tmp_path)  # theta0 of a backbone without a zero-shot head is the linear probe
    score = lambda rec, variant: [(r["eval"], r["value"]) for r in rec["evals"] if r["variant"] == variant]  # noqa: E731
    assert score(record, "wise-ft@0") == score(lp, "lp")


def test_bad_alphas_are_a_user_error(tmp_path):
    with pytest.raises(BenchmarkError, match="alphas"):
        run_smoke("wise-ft", tmp_path, alphas=(0.5, 2.0))
