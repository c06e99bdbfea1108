"""FLYP: symmetric CLIP loss by hand, per-sample class prompts, both towers train, zero-shot head rebuilt."""
import math

import pytest
import torch

from benchmark.report import records
from benchmark.models.clip import set_zero_shot_head
from methods.flyp import FLYP, clip_loss
from tests import tiny_cls
from tests.clip_ctx import TINY_CLIP, step, tiny_clip_context


def test_clip_loss_on_a_2x2_similarity_matrix():
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    # logits = image @ text.T = [[1, .6], [0, .8]]; rows: image->text, columns: text->image
    rows = -math.log(math.e / (math.e + math.exp(0.6))) - math.log(math.exp(0.8) / (1 + math.exp(0.8)))
    cols = -math.log(math.e / (math.e + 1)) - math.log(math.exp(0.8) / (math.exp(0.6) + math.exp(0.8)))
    expected = (rows / 2 + cols / 2) / 2
    assert abs(clip_loss(image, text, torch.tensor(1.0)).item() - expected) < 1e-6


def test_prompts_use_each_sample_class_and_a_random_template():
    model, method, (x, y) = tiny_clip_context(FLYP, {})
    prompts = method.prompts(y)
    assert [p for p in prompts if tiny_cls.CLASSNAMES[0] in p] == [prompts[0], prompts[3]]
    assert all(tiny_cls.CLASSNAMES[c] in p for c, p in zip(y.tolist(), prompts))
    assert len(set(method.prompts(torch.zeros(40, dtype=torch.long)))) > 10  # templates vary per sample


def test_both_towers_train_and_finalize_rebuilds_the_zero_shot_head():
    model, method, batch = tiny_clip_context(FLYP, {})
    trained = {id(p) for g in method.param_groups(model) for p in g["params"]}
    assert all(id(p) in trained for p in model.text.parameters()) and id(model.text.logit_scale) in trained
    assert id(model.head.weight) not in trained
    text_before = model.text.token_embedding.weight.clone()
    head_before = model.head.weight.clone()
    step(model, method, batch)
    assert not torch.equal(text_before, model.text.token_embedding.weight)
    state = method.finalize(model)["flyp"]
    assert not torch.allclose(state["head.weight"], head_before)
    expected = model.head.weight.clone()
    set_zero_shot_head(model, method.text)  # the zero-shot head of the fine-tuned towers
    assert torch.allclose(state["head.weight"], expected) and torch.allclose(expected, model.head.weight)


def test_full_run(monkeypatch, tmp_path):
    tiny_cls.register(monkeypatch)
    assert tiny_cls.cli_run(tmp_path, "flyp", TINY_CLIP) == 0
    (path,) = (tmp_path / "runs" / tiny_cls.NAME).glob("flyp-*.json")
    rec = records.read_record(path)
    assert set(rec["curves"]) == {"train_flyp"} and {r["variant"] for r in rec["evals"]} == {"flyp"}


def test_flyp_on_a_backbone_without_text_tower_is_one_line(monkeypatch, tmp_path, capsys):
    tiny_cls.register(monkeypatch)
    assert tiny_cls.cli_run(tmp_path, "flyp", "lite0") == 2
    err = capsys.readouterr().err
    assert "needs a CLIP text tower" in err and err.count("\n") == 1


def test_accumulation_and_several_processes_are_refused_in_one_line(monkeypatch, tmp_path, capsys):
    # Each image's prompt is every other image's negative: a micro-batch's loss is not its share of the batch's.
    from benchmark.__main__ import main
    from benchmark.engine import distributed
    from benchmark.errors import BenchmarkError

    tiny_cls.register(monkeypatch)
    assert main(["run", "--suite", tiny_cls.NAME, "--method", "flyp", "--backbone", TINY_CLIP, "--set", "accum_steps=2",
                 "--results", str(tmp_path), "--dry-run"]) == 2  # fmt: skip
    assert capsys.readouterr().err == ("error: flyp's contrastive loss is over the whole batch; run it with accum_steps=1 "
                                       "in one process (asked: accum_steps=2)\n")  # fmt: skip
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with pytest.raises(BenchmarkError, match=r"^flyp's contrastive loss is over the whole batch; run it with "
                                             r"accum_steps=1 in one process \(this run: 2 processes\)$"):  # fmt: skip
        tiny_clip_context(FLYP, {})
