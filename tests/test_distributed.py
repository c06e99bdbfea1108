"""One run on many processes (benchmark/engine/distributed.py): on CPU with gloo and 2 processes, a run gives the
record numbers of a 1-process run with the same global batch; the sampler shares every step's images out
exactly; evaluation counts every image once."""
import json
import os
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader

from benchmark.engine import RunContext, distributed, fit, loader
from benchmark.engine.distributed import StepSampler
from benchmark.engine.loop import epoch_generator
from benchmark.harness.plan import resolve_hparams
from benchmark.report import records
from method_smoke import TinyCNN, tiny_suite
from methods import METHODS
from test_accumulation import assert_same_numbers, run

# (method, global-batch overrides, training images): the methods of issue 15, soups too, and a run whose steps
# end with 7 images (shared 3 / 4) in micro-batches of 8 with accumulation.
JOBS = [("ft", {}, 72), ("tpgm", {}, 72), ("wise-ft", {}, 72), ("fsr", {}, 72), ("ftp", {}, 72), ("lp", {}, 72),
        ("soup", {"epochs": 1}, 72), ("ft", {"accum_steps": 2}, 71)]  # fmt: skip
DEADLINE_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, world: int, port: int, results: str) -> None:
    """One torchrun-like process: the environment torchrun sets, then the jobs through execute."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))  # fmt: skip
    torch.set_num_threads(1)  # two processes on a shared machine
    for i, (method, overrides, images) in enumerate(JOBS):
        record = run(method, os.path.join(results, str(i)), images=images, **overrides)
        if rank:
            assert not os.path.exists(os.path.join(results, str(i), "runs", "tiny", f"{record['run_id']}.ckpt.pt"))
    stats = distributed.all_objects(trained_batchnorm_stats(results))
    if rank == 0:
        agree = all(torch.equal(a, b) for a, b in zip(*stats))
        (Path(results) / "batchnorm.json").write_text(json.dumps({"agree": agree}))
    dist.destroy_process_group()


def trained_batchnorm_stats(results: str) -> list[torch.Tensor]:
    """The BatchNorm running statistics of a BN CNN after a 2-process epoch of ft (each process normalises by
    its own share)."""
    torch.manual_seed(0)
    model = TinyCNN.build(SimpleNamespace(image_size=16, classnames=["dark", "bright"])).model
    data = tiny_suite(n=32).train
    ctx = RunContext(train_loader=loader(data, 16), selection_loader=None, device=torch.device("cpu"), num_classes=2,
                     suite="tiny", seed=0, progress=False)  # fmt: skip
    hp = resolve_hparams("tiny", METHODS.get("ft"), {"epochs": 1, "batch_size": 8})
    method = METHODS.get("ft")(hp)
    method.setup(model, ctx)
    fit(model, method, ctx, hp, data, Path(results) / "batchnorm.ckpt.pt", progress=False)
    return [t for name, t in model.state_dict().items() if "running" in name]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> SimpleNamespace:
    """The records the 2-process runs wrote (rank 0 alone writes), and their folder."""
    results = tmp_path_factory.mktemp("ddp")
    context = mp.spawn(worker, args=(2, free_port(), str(results)), nprocs=2, join=False)
    for _ in range(DEADLINE_S):
        if context.join(timeout=1):
            break
    else:
        for p in context.processes:
            p.kill()
        pytest.fail(f"2-process runs did not finish in {DEADLINE_S}s")
    out = []
    for i in range(len(JOBS)):
        (path,) = (results / str(i) / "runs" / "tiny").glob("*.json")
        out.append(records.read_record(path))
    return SimpleNamespace(records=out, folder=results)


@pytest.mark.parametrize("job", range(len(JOBS)), ids=[f"{m}-{n}{'-accum' if o.get('accum_steps') else ''}" for m, o, n in JOBS])
def test_two_processes_give_the_record_numbers_of_one(job, two_processes, tmp_path):
    method, overrides, images = JOBS[job]
    shared = two_processes.records[job]
    assert shared["world_size"] == 2 and shared["devices"] == ["cpu", "cpu"] and len(shared["peak_memory"]["bytes"]) == 2
    assert shared["eval_images_per_s"] > 0
    assert shared["train_images_per_s"] > 0 if method != "lp" else shared["train_images_per_s"] is None  # lp trains nothing
    one = run(method, tmp_path, images=images, **overrides)
    assert one["world_size"] == 1 and one["run_id"] == shared["run_id"]
    assert_same_numbers(shared, one)


def test_batchnorm_running_statistics_are_one_model_on_every_process(two_processes):
    assert json.loads((two_processes.folder / "batchnorm.json").read_text()) == {"agree": True}


def test_the_one_process_order_is_the_shuffled_loader_order_it_replaced():
    for n, batch in [(72, 32), (16, 4), (7, 8)]:
        old = DataLoader(list(range(n)), batch_size=batch, shuffle=True, generator=epoch_generator(3, 1))
        sampler = StepSampler(n, batch, epoch_generator(3, 1))
        new = DataLoader(list(range(n)), batch_size=batch, sampler=sampler, generator=epoch_generator(3, 1))
        assert [b.tolist() for b in new] == [b.tolist() for b in old]
        assert len(sampler) == n


def shares(monkeypatch, world: int, n: int, batch: int, start: int = 0) -> list[list[int]]:
    """Each simulated rank's indices of one epoch."""
    out = []
    for r in range(world):
        monkeypatch.setattr(distributed, "world_size", lambda: world)
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        out.append(list(StepSampler(n, batch, epoch_generator(0, 2), start=start)))
    return out


@pytest.mark.parametrize("world, n, batch", [(2, 71, 32), (3, 50, 12), (4, 10, 8)])
def test_every_step_is_shared_out_whole_without_padding(world, n, batch, monkeypatch):
    per_rank = shares(monkeypatch, world, n, batch)
    order = epoch_generator(0, 2)
    whole = distributed.epoch_permutation(n, order).tolist()
    assert sorted(i for part in per_rank for i in part) == list(range(n))  # each image once
    taken = [0] * world
    for step in range(-(-n // batch)):
        size = min(batch, n - step * batch)
        mine = [size * (r + 1) // world - size * r // world for r in range(world)]
        assert max(mine) - min(mine) <= 1
        got = [per_rank[r][taken[r] : taken[r] + mine[r]] for r in range(world)]
        assert sum(got, []) == whole[step * batch : step * batch + size]  # the step's images, in rank order
        taken = [t + m for t, m in zip(taken, mine)]


def test_a_resumed_epoch_skips_exactly_the_steps_done(monkeypatch):
    full, resumed = shares(monkeypatch, 2, 71, 16), shares(monkeypatch, 2, 71, 16, start=3)
    assert [part[24:] for part in full] == resumed  # 3 steps of 8 images per rank


@pytest.mark.parametrize("n", [0, 1, 5, 8])
def test_evaluation_shares_cover_a_set_once(n, monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    covered = []
    for r in range(3):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        covered += list(distributed.share(n))
    assert covered == list(range(n))


def test_the_record_says_how_it_ran(tmp_path):
    record = run("ft", tmp_path, epochs=1)
    assert (record["world_size"], record["accum_steps"], record["devices"]) == (1, 1, ["cpu"])
    assert record["peak_memory"]["of"].startswith("peak resident set size") and record["peak_memory"]["bytes"][0] > 2**20
    json.dumps(record)


def test_under_torchrun_only_rank_0_prints_and_writes_the_tables(tmp_path, monkeypatch, capsys):
    """Every process runs the command (and its runs, together); the others print nothing and publish nothing."""
    from benchmark.__main__ import main
    from benchmark.harness import run as harness_run, sweep
    from benchmark.harness.run import Outcome
    from benchmark.report import publish

    ran, published = [], []

    def run_groups(groups, *args, **kwargs):
        for run in (run for group in groups for run in group):
            ran.append(run.config.run_id)
            yield run, Outcome(run.config.run_id, tmp_path / f"{run.config.run_id}.json", "done", {"wall_s": 1.0})

    monkeypatch.setattr(harness_run, "run_groups", run_groups)
    monkeypatch.setattr(sweep, "run_groups", run_groups)
    monkeypatch.setattr(publish, "publish", lambda *args, **kwargs: published.append(args) or publish.Published([], "a table", "a summary"))
    tiny = ["--suite", "tiny", "--method", "ft", "--results", str(tmp_path), "--no-progress"]
    for rank_0 in (True, False):
        monkeypatch.setattr(distributed, "is_main", lambda: rank_0)
        for argv in (["run", *tiny], ["run", *tiny, "--dry-run"], ["sweep", *tiny], ["sweep", *tiny, "--status"]):
            assert main(argv) == 0
        out = capsys.readouterr().out
        assert len(ran) == 2 and (out and published if rank_0 else not out and not published), rank_0
        ran.clear(), published.clear()


@pytest.mark.parametrize("launcher", ["parallel", "slurm"])
def test_a_sweep_launcher_with_processes_of_its_own_is_refused_under_torchrun(launcher, tmp_path, monkeypatch, capsys):
    from benchmark.__main__ import main

    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    assert main(["sweep", "--suite", "tiny", "--method", "ft", "--launcher", launcher, "--results", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: --launcher {launcher} starts processes of its own: run the sweep without torchrun\n"
