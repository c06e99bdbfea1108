"""Lipsum-FT: random texts, the energy-gap regulariser (0 at the zero-shot model), the official head (bias-free,
frozen scale outside), full run, refusal without CLIP."""
import torch
import torch.nn.functional as F

from benchmark.report import records
from methods.lipsum_ft import LipsumFT, energy_gap, random_tokens
from tests import tiny_cls
from tests.clip_ctx import TINY_CLIP, step, tiny_clip_context


def test_random_texts_are_sot_random_ids_eot_and_resampled():
    import open_clip

    tok = open_clip.get_tokenizer("ViT-B-32")
    g = torch.Generator().manual_seed(0)
    a, b = random_tokens(tok, 80, 8, g), random_tokens(tok, 80, 8, g)
    assert a.shape == (80, 77) and torch.all(a[:, 0] == 49406) and torch.all(a[:, 9] == 49407)
    assert torch.all(a[:, 1:9] < 49406) and torch.all(a[:, 10:] == 0)
    assert not torch.equal(a, b)  # a fresh draw every step
    assert torch.equal(a, random_tokens(tok, 80, 8, torch.Generator().manual_seed(0)))


def test_energy_gap_by_hand():
    f, f0 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    texts = torch.eye(2)
    # gaps: 2 * (f - f0) . t_k = [2, -2]; (4 + 4) / (2 * 2 texts) = 2
    assert energy_gap(f, f0, texts, 2.0).item() == 2.0


def test_regulariser_is_zero_at_init_and_positive_after_a_step():
    model, method, batch = tiny_clip_context(LipsumFT, {})
    with torch.no_grad():  # same attention kernels as the frozen reference: bitwise the same energies
        assert method.loss(model.eval(), batch)["lipsum"].item() == 0.0
    terms = method.loss(model.train(), batch)  # training kernels differ in rounding only
    assert terms["lipsum"].item() < 1e-10 and terms["ce"].item() > 0
    text_before = [p.clone() for p in model.text.parameters()]
    step(model, method, batch)
    assert method.loss(model, batch)["lipsum"].item() > 0
    assert all(torch.equal(a, b) for a, b in zip(text_before, model.text.parameters()))  # text tower frozen


def test_full_run_records_both_loss_terms(monkeypatch, tmp_path):
    tiny_cls.register(monkeypatch)
    assert tiny_cls.cli_run(tmp_path, "lipsum-ft", TINY_CLIP, "--set", "lipsum_texts=4") == 0
    (path,) = (tmp_path / "runs" / tiny_cls.NAME).glob("lipsum-ft-*.json")
    rec = records.read_record(path)
    assert set(rec["curves"]) == {"train_ce", "train_lipsum"} and {r["variant"] for r in rec["evals"]} == {"lipsum-ft"}


def test_lipsum_on_a_backbone_without_text_tower_is_one_line(monkeypatch, tmp_path, capsys):
    tiny_cls.register(monkeypatch)
    assert tiny_cls.cli_run(tmp_path, "lipsum-ft", "lite0") == 2
    err = capsys.readouterr().err
    assert "needs a CLIP text tower" in err and err.count("\n") == 1


def test_head_is_the_official_bias_free_linear_with_the_frozen_scale_outside():
    model, method, (x, _) = tiny_clip_context(LipsumFT, {})
    head, reference = model.head, method.reference
    scale = reference.logit_scale  # exp of the pretrained logit_scale
    assert [name for name, _ in head.named_parameters()] == ["weight"]  # no bias
    # W: the zero-shot classifier's rows, the normalised class text embeddings.
    torch.testing.assert_close(head.weight, F.normalize(reference.head.weight, dim=1))
    torch.testing.assert_close(head.weight.norm(dim=1), torch.ones(3))
    trained = [p for group in method.param_groups(model) for p in group["params"]]
    assert torch.equal(head.scale, scale) and not any(p is head.scale for p in trained)  # frozen
    with torch.no_grad():
        f = model.features(x)
        torch.testing.assert_close(model.head(f), scale * (f @ head.weight.T))
        torch.testing.assert_close(model(x), reference(x))  # still the zero-shot classifier


def test_an_adamw_step_moves_the_head_weights_by_lr_not_lr_over_the_scale():
    model, method, batch = tiny_clip_context(LipsumFT, {})
    before = model.head.weight.detach().clone()
    optimizer = torch.optim.AdamW(method.param_groups(model), lr=1e-3, weight_decay=0.0)
    sum(method.loss(model, batch).values()).backward()
    optimizer.step()
    moved = (model.head.weight.detach() - before).abs()
    # Adam's first step moves each entry by lr * |g| / (|g| + eps), i.e. lr; with the scale folded into
    # the weights it would be lr / scale (here 1 / 0.07 = 14.3; 100 for the OpenAI weights).
    assert moved.min().item() > 0.99e-3 and moved.max().item() < 1.01e-3


def test_finalize_folds_the_scale_into_our_clip_head_layout():
    model, method, batch = tiny_clip_context(LipsumFT, {})
    step(model, method, batch)
    with torch.no_grad():
        trained = model(batch[0])
    (state,) = method.finalize(model).values()
    # The layout of the zero-shot model (s * W, bias 0): the variant loads into it and interpolates with it.
    assert set(state) == set(method.reference.state_dict()) and torch.all(state["head.bias"] == 0)
    with torch.no_grad():
        torch.testing.assert_close(model(batch[0]), trained)


def test_a_checkpointed_model_loads_into_a_freshly_set_up_one():
    model, method, batch = tiny_clip_context(LipsumFT, {})
    step(model, method, batch)
    fresh, _, _ = tiny_clip_context(LipsumFT, {})
    fresh.load_state_dict(model.state_dict())  # strict: the head's layout matches, the scale is rebuilt by setup
    assert torch.equal(fresh.head.weight, model.head.weight) and torch.equal(fresh.head.scale, model.head.scale)


def lipsum_record(results, *sets) -> dict:
    from benchmark.__main__ import main

    assert main(["run", "--suite", tiny_cls.NAME, "--method", "lipsum-ft", "--backbone", TINY_CLIP, "--results",
                 str(results), "--no-progress", "--workers", "0", "--set", "lipsum_texts=4", "lr=1e-3", "epochs=1",
                 "batch_size=8", *sets]) == 0  # fmt: skip
    (path,) = (results / "runs" / tiny_cls.NAME).glob("lipsum-ft-*.json")
    return records.read_record(path)


def test_micro_batches_of_a_step_share_its_random_texts_so_accumulation_trains_the_whole_batch(monkeypatch, tmp_path):
    from test_accumulation import assert_same_numbers

    tiny_cls.register(monkeypatch)
    whole = lipsum_record(tmp_path / "whole")
    accumulated = lipsum_record(tmp_path / "accumulated", "accum_steps=2")  # 21 images: micro-batches 4+4, 4+4, 4+1
    assert accumulated["accum_steps"] == 2
    assert_same_numbers(accumulated, whole)


def test_a_process_without_images_in_a_step_draws_that_steps_texts_all_the_same():
    # Under torchrun a short last step can leave a process no image: its generator must keep up with the others'.
    model, method, batch = tiny_clip_context(LipsumFT, {})
    _, idle, _ = tiny_clip_context(LipsumFT, {})
    method.loss(model, batch)
    method.loss(model, batch)  # a second micro-batch of the step: the same texts, nothing drawn
    method.after_step(model, 0)
    idle.after_step(model, 0)
    assert torch.equal(idle.generator.get_state(), method.generator.get_state())
    assert not torch.equal(idle.generator.get_state(), torch.Generator().manual_seed(0).get_state())
