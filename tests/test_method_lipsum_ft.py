"""Lipsum-FT: random texts, the energy-gap regulariser (0 at the zero-shot model), full run, refusal without CLIP."""
import torch

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
