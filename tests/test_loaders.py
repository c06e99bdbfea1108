"""The one loader: its batches and random augmentations are the same with 0, 1 or 2 worker processes, persistent
or not, in the order the run's generator gives; the caller's random streams are left as they were. A run's
--workers reaches every loader it builds, and its record is the same with or without worker processes."""
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset
from torchvision import transforms as T

import method_smoke  # noqa: F401 - registers the tiny suite and backbone
from benchmark.__main__ import build_parser, main
from benchmark.data.base import ArrayDataset
from benchmark.engine import loader, loaders
from benchmark.engine.loaders import default_workers
from benchmark.report import records
from method_smoke import BACKBONE

N, BATCH = 21, 4  # a short last batch


def noise(x: torch.Tensor) -> torch.Tensor:
    """Random draws from Python's and NumPy's global generators too (timm's transforms use both)."""
    return x + random.random() + float(np.random.rand())


def augmented() -> ArrayDataset:
    """Random images under a random crop, flip and noise: every sample's values depend on its RNG."""
    images = np.random.default_rng(0).integers(0, 256, (N, 12, 12, 3), dtype=np.uint8)
    transform = T.Compose([T.RandomResizedCrop(8, antialias=True), T.RandomHorizontalFlip(), T.ToTensor(), noise])
    return ArrayDataset(images, np.arange(N), transform)  # labels: the sample indices


def epochs(workers: int, persistent: bool, shuffle=True, passes=2) -> list[list[torch.Tensor]]:
    """Every batch of `passes` passes, one loader re-iterated as a run's epochs would (generator reseeded per
    epoch when shuffled)."""
    gen = torch.Generator() if shuffle else None  # unshuffled: the global generator keys the passes
    batches = loader(augmented(), BATCH, shuffle=shuffle, generator=gen, workers=workers, persistent=persistent)
    out = []
    for epoch in range(passes):
        if shuffle:
            gen.manual_seed(100 + epoch)
        out.append([torch.cat([x.flatten(1), y[:, None].float()], dim=1) for x, y in batches])
    return out


def same(a, b) -> bool:
    return len(a) == len(b) and all(len(x) == len(y) and all(torch.equal(u, v) for u, v in zip(x, y)) for x, y in zip(a, b))


@pytest.mark.parametrize("workers, persistent", [(1, False), (2, False), (1, True), (2, True)])
def test_batches_and_augmentations_do_not_depend_on_workers(workers, persistent):
    reference = epochs(0, False)
    assert same(epochs(workers, persistent), reference)
    first, second = (torch.cat(epoch) for epoch in reference)
    assert first[:, -1].tolist() != second[:, -1].tolist()  # another epoch: another order,
    by_index = [e[e[:, -1].argsort()] for e in (first, second)]
    assert not (by_index[0] == by_index[1]).all(dim=1).any()  # and other augmentations of every sample


def test_a_pass_reuses_persistent_workers_and_moves_the_generator_as_without_them():
    # The generator is not reseeded between passes (TPGM's held-out stream): its second pass must still match.
    def passes(workers):
        gen = torch.Generator().manual_seed(3)
        batches = loader(augmented(), BATCH, shuffle=True, generator=gen, workers=workers, persistent=workers > 0)
        return [[x for x, _ in batches] for _ in range(3)], gen.get_state()

    (reference, state), (two, two_state) = passes(0), passes(2)
    assert same(two, reference) and torch.equal(state, two_state)


def test_the_order_is_the_one_the_generator_gave_before():
    # Committed records were made with DataLoader(shuffle=True, generator=epoch generator): same order now.
    data = augmented()
    old = [y for _, y in DataLoader(data, BATCH, shuffle=True, generator=torch.Generator().manual_seed(7))]
    new = [y for _, y in loader(data, BATCH, shuffle=True, generator=torch.Generator().manual_seed(7), workers=2)]
    assert same([old], [new])


def test_unshuffled_without_a_generator_draws_from_the_global_one_as_before():
    # Key from the global generator: one draw a pass whatever the workers, so the run's later draws agree.
    def run(workers):
        torch.manual_seed(0)
        batches = epochs(workers, persistent=workers > 0, shuffle=False)
        return batches, torch.get_rng_state()

    (reference, state), (two, two_state) = run(0), run(2)
    assert same(two, reference) and torch.equal(state, two_state)
    torch.manual_seed(0)
    DataLoader(augmented(), BATCH).__iter__()  # what DataLoader draws when a pass starts
    DataLoader(augmented(), BATCH).__iter__()
    assert torch.equal(torch.get_rng_state(), state)


def test_the_callers_random_streams_are_left_alone():
    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    expected = torch.rand(3), random.random(), np.random.rand()
    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    for _ in loader(augmented(), BATCH, shuffle=True, generator=torch.Generator().manual_seed(0)):
        pass
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1] and np.random.rand() == expected[2]


def test_a_sampler_orders_the_batches_and_excludes_shuffle():
    order = [5, 3, 1, 20, 0]
    labels = [y for _, y in loader(augmented(), 2, sampler=order, generator=torch.Generator().manual_seed(0))]
    assert torch.cat(labels).tolist() == order
    with pytest.raises(ValueError, match="exclusive"):
        loader(augmented(), 2, shuffle=True, sampler=order)


def test_a_loaders_dataset_read_by_index_gives_plain_samples():
    # Code that takes ctx.train_loader.dataset (a share of it, another loader over it) still gets samples.
    batches = loader(augmented(), BATCH)
    x, y = batches.dataset[4]
    assert x.shape == (3, 8, 8) and y == 4
    again = loader(Subset(batches.dataset, [4, 5]), 2, workers=1)
    assert [y.tolist() for _, y in again] == [[4, 5]]


# --- --workers reaches every loader of a run -------------------------------------------------------------------

# Every path that builds a loader: training (persistent over epochs), the evaluation of each variant, TPGM's held-out
# radius batches (persistent), WiSE-FT's probe features and BatchNorm re-estimation, a soup's extra trainings and its
# greedy selection.
METHODS_LOADING = ["ft", "tpgm", "wise-ft", "soup"]
# Fewer WiSE-FT variants and soup ingredients than by default: each is a loader more, not a path more.
FEWER = ("alphas=(0.0,0.5,1.0)", "soup_lr_scales=(2.0,)")


@pytest.fixture
def built_loaders(monkeypatch) -> list[tuple[int, bool]]:
    """(workers, persistent) of every loader built while the test runs."""
    built = []
    init = loaders.Batches.__init__

    def spy(self, *args, **kwargs):
        built.append((kwargs["num_workers"], kwargs["persistent_workers"]))
        init(self, *args, **kwargs)

    monkeypatch.setattr(loaders.Batches, "__init__", spy)
    return built


def cli_records(results, command: str, workers: int, methods=METHODS_LOADING, sets=FEWER) -> dict[str, dict]:
    """The records of a tiny `run` or `sweep` with `--workers workers`, by run id."""
    argv = [command, "--suite", "tiny", "--method", *methods, "--set", "epochs=2", "batch_size=8", "eval_batch_size=16",
            *sets, "--workers", str(workers), "--results", str(results), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    return {p.stem: records.read_record(p) for p in sorted((results / "runs" / "tiny").glob("*.json"))}


def test_a_run_with_worker_processes_gives_the_numbers_of_one_without(tmp_path, built_loaders, capsys):
    alone = cli_records(tmp_path / "alone", "run", 0)
    assert built_loaders and {workers for workers, _ in built_loaders} == {0}
    built_loaders.clear()
    helped = cli_records(tmp_path / "helped", "run", 2)
    assert {workers for workers, _ in built_loaders} == {2}  # every loader the run built
    assert (2, True) in built_loaders  # the training loader and TPGM's held-out stream keep theirs between passes
    assert alone.keys() == helped.keys() and len(alone) == len(METHODS_LOADING)
    for run_id, record in alone.items():
        assert helped[run_id]["evals"] == record["evals"], run_id
        assert helped[run_id]["curves"] == record["curves"], run_id


def test_sweep_and_eval_load_with_their_workers_too(tmp_path, built_loaders, capsys):
    from test_eval import tiny_state

    cli_records(tmp_path, "sweep", 2, methods=["ft"], sets=())
    assert built_loaders and {workers for workers, _ in built_loaders} == {2}
    built_loaders.clear()
    checkpoint = tmp_path / "weights.pt"
    torch.save(tiny_state(), checkpoint)
    assert main(["eval", "--suite", "tiny", "--backbone", BACKBONE, "--checkpoint", str(checkpoint), "--results",
                 str(tmp_path), "--no-progress", "--workers", "2"]) == 0  # fmt: skip
    assert built_loaders and {workers for workers, _ in built_loaders} == {2}


@pytest.mark.parametrize("argv", [
    ["run", "--suite", "tiny"], ["sweep", "--suite", "tiny"], ["reproduce", "--plan"],
    ["eval", "--suite", "tiny", "--backbone", BACKBONE, "--checkpoint", "none.pt"],
])  # fmt: skip
def test_every_command_that_loads_data_takes_workers_and_a_negative_count_is_one_line(argv, tmp_path, capsys):
    assert build_parser().parse_args(argv).workers == default_workers()  # one default for all
    assert main([*argv, "--workers", "-1", "--results", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "error: --workers must be 0 (load in the main process) or more, got -1\n"
    assert not (tmp_path / "runs").exists()
