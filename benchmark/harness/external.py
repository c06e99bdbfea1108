"""`benchmark eval`: score a checkpoint trained elsewhere on every eval set of a suite, as a run's variant is
scored, and record it like a run (method ``external``, one variant) so it sits in the same tables.

The checkpoint is a ``torch.save`` file read with ``weights_only=True``: a state dict of the backbone with
its head, keyed as oodbench builds the model (``create_backbone``: ``backbone.*``, ``head.*``, and ``text.*``
for CLIP), either at the top level or under one of CHECKPOINT_KEYS (oodbench's own interrupted-run
checkpoints keep it under ``model``). A CLIP checkpoint may also be in open_clip's own layout (``visual.*``
and the text tower at the top level). A CLIP checkpoint without head weights gets the zero-shot head of its
own text tower for the suite's class names, as the ``zeroshot`` method builds it; the record says which.

The run id hashes the config, which holds the checkpoint's sha256, not its name: the same weights under
another name are the same record.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from benchmark.data import SUITES
from benchmark.data.base import Suite
from benchmark.engine import default_device, evaluate
from benchmark.errors import BenchmarkError
from benchmark.harness.plan import OVERRIDE_SOURCE, run_id_of, suite_recipe
from benchmark.harness.run import Outcome, check_finite, existing_record, non_finite, prepare_suite
from benchmark.models import create_backbone
from benchmark.report import records
from benchmark.resources import cache_root

METHOD = "external"
# Where training scripts commonly keep the state dict inside a bigger checkpoint dict, tried in this order.
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")
HEAD = "head."
NAMED = 3  # keys named in a mismatch error; the rest are counted


@dataclass
class ExternalConfig:
    """What the record of one checkpoint evaluation is keyed on (the field names of a RunConfig where they
    mean the same, so tables and checks read both alike)."""

    suite: str
    backbone: str
    image_size: int
    checkpoint: str  # sha256 of the file's bytes
    hparams: dict  # only eval_batch_size: nothing is trained
    sizes: dict
    method: str = METHOD
    seed: int = 0  # no seed of ours made the weights; the records' schema wants one

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def run_id(self) -> str:
        return run_id_of(METHOD, self.to_dict())


@dataclass
class Checkpoint:
    path: Path
    sha256: str
    state: dict[str, torch.Tensor]
    layout: str  # "oodbench" or "open_clip"

    def describe(self, head: str) -> dict:
        """The record's account of the file: its name (not in the config) but not its folder, which is this
        machine's."""
        return {"file": self.path.name, "sha256": self.sha256, "bytes": self.path.stat().st_size,
                "layout": self.layout, "head": head}  # fmt: skip


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cause(error: Exception) -> str:
    """The exception's type and the first sentence of its message (torch's run to paragraphs)."""
    text = str(error).strip().splitlines()[0].split(". ")[0].rstrip(".") if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def load_weights(path: Path) -> object:
    """torch.load with weights_only=True: tensors and plain containers, never arbitrary objects."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a damaged or foreign file
        raise BenchmarkError(f"cannot read checkpoint {path}: not a torch.save file of tensors, or damaged "
                             f"({cause(e)})") from None  # fmt: skip


def is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items())


def unwrap(obj, path: Path) -> dict[str, torch.Tensor]:
    """The state dict itself, or the one a checkpoint dict holds under one of CHECKPOINT_KEYS."""
    if is_state_dict(obj):
        return dict(obj)
    for key in CHECKPOINT_KEYS:
        if isinstance(obj, dict) and is_state_dict(obj.get(key)):
            return dict(obj[key])
    raise BenchmarkError(f"checkpoint {path} holds no state dict: expected a dict of tensors, or one under "
                         f"{', '.join(repr(k) for k in CHECKPOINT_KEYS)}")  # fmt: skip


def from_open_clip(state: dict) -> dict:
    """open_clip's own layout (image tower under ``visual.``, text tower at the top) in oodbench's names."""
    return {f"backbone.{k}" if k.startswith("visual.") else f"text.{k}": v for k, v in state.items()}


def read_checkpoint(path: Path, backbone: str) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"checkpoint {path} not found")
    state = unwrap(load_weights(path), path)
    native = backbone.startswith("clip:") and any(k.startswith("visual.") for k in state) \
        and not any(k.startswith("backbone.") for k in state)  # fmt: skip
    return Checkpoint(path, file_sha256(path), from_open_clip(state) if native else state,
                      "open_clip" if native else "oodbench")  # fmt: skip


def asked_departures(suite: str, image_size: int | None, sizes: dict, resolved: dict) -> dict:
    """The image size and data sizes asked for that differ from the suite's, as a run records them: they
    change what is scored, so a table must show them."""
    spec = SUITES.get(suite)
    asked = {"image_size": (image_size, spec.image_size)} if image_size is not None else {}
    asked.update({f"sizes.{k}": (resolved[k], spec.sizes[k]) for k in sizes})
    return {k: {"value": v, "suite": default, "source": OVERRIDE_SOURCE} for k, (v, default) in asked.items() if v != default}


def plan_external(suite: str, backbone: str, sha256: str, image_size: int | None = None,
                  sizes: dict | None = None) -> tuple[ExternalConfig, dict]:
    """The config of one checkpoint evaluation, and its departures from the suite's defaults."""
    spec, sizes = SUITES.get(suite), dict(sizes or {})
    resolved = spec.resolve_sizes(sizes)
    cfg = ExternalConfig(suite=suite, backbone=backbone, image_size=spec.image_size if image_size is None else image_size,
                         checkpoint=sha256, hparams={"eval_batch_size": suite_recipe(suite)["eval_batch_size"]},
                         sizes=resolved)  # fmt: skip
    return cfg, asked_departures(suite, image_size, sizes, resolved)


def listed(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:NAMED]) + (f", ... ({len(keys)} in all)" if len(keys) > NAMED else "")


def class_key(expected: dict) -> str:
    """The head's last tensor: the bias of its final layer (Linear or 1x1 conv), one entry per class."""
    return [k for k in expected if k.startswith(HEAD)][-1]


def check_fit(ckpt: Checkpoint, expected: dict, cfg: ExternalConfig, num_classes: int, zero_shot: bool) -> None:
    """One-line errors, in the order that says most: a head for another class count, missing or unexpected
    keys, then any other shape that differs."""
    state, name = ckpt.state, ckpt.path.name
    key = class_key(expected)
    if key in state and state[key].shape[:1] != expected[key].shape[:1]:
        raise BenchmarkError(f"checkpoint {name} has a head for {state[key].shape[0]} classes ({key}), but suite "
                             f"{cfg.suite} has {num_classes} classes")  # fmt: skip
    wanted = {k for k in expected if not (zero_shot and k.startswith(HEAD))}
    missing, unexpected = wanted - set(state), set(state) - wanted
    if missing or unexpected:
        parts = [f"missing {len(missing)} key(s): {listed(missing)}"] if missing else []
        parts += [f"unexpected {len(unexpected)} key(s): {listed(unexpected)}"] if unexpected else []
        raise BenchmarkError(f"checkpoint {name} does not fit backbone {cfg.backbone}: {'; '.join(parts)}")
    wrong = [k for k in wanted if state[k].shape != expected[k].shape]
    if wrong:
        k = wrong[0]
        raise BenchmarkError(f"checkpoint {name} does not fit backbone {cfg.backbone}: {k} is {list(state[k].shape)} "
                             f"there, {list(expected[k].shape)} in the model ({len(wrong)} tensor(s) differ)")  # fmt: skip


def load_into(model, extras: dict, ckpt: Checkpoint, cfg: ExternalConfig, num_classes: int) -> str:
    """Load the checkpoint into the model built for the suite; returns where the head came from."""
    expected = model.state_dict()
    # Only a CLIP model can make a head of its own: from its text tower and the suite's class names.
    zero_shot = "text" in extras and not any(k.startswith(HEAD) for k in ckpt.state)
    check_fit(ckpt, expected, cfg, num_classes, zero_shot)
    exempt = {name for name, buffer in model.named_buffers() if non_finite(buffer)}
    check_finite(METHOD, f"in checkpoint {ckpt.path.name}", ckpt.state.items(), exempt)
    model.load_state_dict(ckpt.state, strict=not zero_shot)
    if not zero_shot:
        return "checkpoint"
    model.set_zero_shot_head(extras["text"])  # a CLIPClassifier: the zeroshot method's head
    return "zero-shot (the checkpoint's text tower, the suite's class names)"


def evaluate_checkpoint(cfg: ExternalConfig, ckpt: Checkpoint, suite: Suite, results: Path, label: str = METHOD,
                        departures: dict | None = None, progress: bool = True, rerun: bool = False,
                        workers: int = 0) -> Outcome:  # fmt: skip
    """Score the checkpoint on every eval set of the suite (the selection split too), its images loaded by
    `workers` processes, and write its record, unless one exists (with rerun: supersede it)."""
    path = records.record_path(results, cfg.suite, cfg.run_id)
    supersede = path.exists()
    if supersede and not rerun:
        return Outcome(cfg.run_id, path, "skipped", existing_record(cfg, suite, results))
    started = time.time()
    # Not pretrained: every weight comes from the checkpoint, so the pretrained ones need not be present. The
    # suite's prompt templates, as in a run, for a zero-shot head rebuilt from the checkpoint's text tower.
    built = create_backbone(cfg.backbone, suite.classnames, cfg.image_size, False, suite.templates)
    dev = default_device()
    # channels_last as in a run, so a run's own weights score exactly as that run scored them.
    model = built.model.to(dev, memory_format=torch.channels_last)
    head = load_into(model, built.extras, ckpt, cfg, suite.num_classes)
    scored = evaluate(model, suite.all_evals(), dev, cfg.hparams["eval_batch_size"], desc=f"eval {label}", progress=progress,
                      workers=workers)  # fmt: skip
    rows = [{"variant": label, **row} for row in scored]
    record = {
        "run_id": cfg.run_id, "config": cfg.to_dict(), "seed": cfg.seed, "data": suite.fingerprint, "departures": departures or {},
        "code": records.code_identity(), "versions": records.library_versions(), "device": str(dev), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_s": round(time.time() - started, 2), "suite_notes": suite.notes, "evals": rows, "curves": {},
        "checkpoint": ckpt.describe(head),
    }  # fmt: skip
    written = records.write_record(results, record, supersede=supersede)
    return Outcome(cfg.run_id, written, "superseded" if supersede else "done", record)


def check_label(label: str) -> str:
    """The variant name shown in tables: one short line, no table separators."""
    if not label.strip() or any(c in label for c in "|\n\r"):
        raise BenchmarkError(f"--name {label!r}: give a non-empty label without '|' or line breaks")
    return label.strip()


def run_external(suite: str, backbone: str, checkpoint: Path, results: Path, image_size: int | None = None,
                 sizes: dict | None = None, data_root=None, label: str = METHOD, progress: bool = True,
                 workers: int = 2, rerun: bool = False) -> Outcome:
    """`benchmark eval`: read and check the file first (before any data is built), then plan, build the
    suite with the backbone's preprocessing, and evaluate; `workers` processes corrupt the data and load it."""
    label = check_label(label)
    ckpt = read_checkpoint(checkpoint, backbone)
    cfg, departures = plan_external(suite, backbone, ckpt.sha256, image_size, sizes)
    records.writable_folder(Path(results) / "runs" / suite, "results")  # now, before the data is built
    records.writable_folder(cache_root(), "cache")
    built_suite = prepare_suite(cfg, data_root, progress=progress, workers=workers)
    return evaluate_checkpoint(cfg, ckpt, built_suite, results, label, departures, progress, rerun, workers)
