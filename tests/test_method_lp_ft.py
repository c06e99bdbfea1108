import torch

from benchmark.models import create_backbone
from method_smoke import BACKBONE, run_smoke, tiny_suite, variants
from benchmark.engine import RunContext
from methods.lp import fit_logistic_regression, extract_features
from methods.lp_ft import LPFT


def test_head_equals_the_probe_before_training_and_everything_then_trains():
    torch.manual_seed(0)
    model = create_backbone(BACKBONE, ["dark", "bright"], 16, pretrained=False).model
    train = torch.utils.data.DataLoader(tiny_suite().train, batch_size=8)
    ctx = RunContext(train, train, torch.device("cpu"), 2, "tiny", 0)
    feats, labels = extract_features(model, train, ctx.device, progress=False)
    w, b = fit_logistic_regression(feats, labels, 2, LPFT.HPARAMS["probe_wd"])
    method = LPFT(LPFT.hparams_for("tiny"))
    method.setup(model, ctx)
    torch.testing.assert_close(model.head.weight, w)
    torch.testing.assert_close(model.head.bias, b)
    trained = {id(p) for g in method.param_groups(model) for p in g["params"]}
    assert trained == {id(p) for p in model.parameters()}


def test_lr_is_a_tenth_of_the_suite_ft_lr():
    from benchmark.harness.plan import suite_recipe

    assert LPFT.hparams_for("fmnist-c")["lr"] == suite_recipe("fmnist-c")["lr"] / 10


def test_runs_through_the_harness(tmp_path):
    assert variants(run_smoke("lp-ft", tmp_path)) == {"lp-ft"}
