"""One run on many processes: `torchrun --nproc-per-node N -m benchmark run ...`.

Data parallel without DistributedDataParallel. Every process holds the whole model and trains on its share of
each optimizer step's images; after the backward passes the gradients are summed across processes with one
all_reduce (``sum_gradients``), weighted so that the sum is the gradient of the whole global batch. Why not
DDP: methods run the model in ways DDP's hooks do not see or forbid (TPGM's torch.func.functional_call on the
module's own parameter names, FSR's separate ``features``/``head`` passes, several forwards per backward),
the last step of an epoch gives processes unequal (possibly empty) shares, and gradient accumulation wants
one reduction per optimizer step; summing by hand is exact in all of these. The cost is that communication
does not overlap the backward pass (one flattened all_reduce of the gradients per optimizer step).

Everything else a run computes is either identical on every process (same weights, same seeds: the frozen
reference, method state, finalised variants) or sharded and reduced exactly (evaluation counts, TPGM's
radius gradients, the linear probe's features). Outside torchrun (no WORLD_SIZE, or 1) every function here
is the single-process identity.
"""
from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from benchmark.errors import BenchmarkError


def init_from_env() -> None:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT): nccl on
    GPUs (one per process, by LOCAL_RANK), gloo on CPU. Nothing to do outside torchrun or when already joined."""
    if int(os.environ.get("WORLD_SIZE", "1")) < 2 or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    # The others wait while rank 0 alone writes a checkpoint or record, or fits a linear probe (L-BFGS on CPU over
    # every training image's features: minutes on ImageNet), so the timeout is long.
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=timedelta(hours=2))


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def device(default: torch.device) -> torch.device:
    """This process's GPU under torchrun with GPUs (named by index: records say which), else `default`."""
    return torch.device("cuda", torch.cuda.current_device()) if world_size() > 1 and default.type == "cuda" else default


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def per_device_batch(batch_size: int, accum_steps: int) -> int:
    """Images per forward pass: the recipe's batch_size is the global batch = per-device batch x processes x
    accum_steps (so a run's optimizer steps do not depend on how many devices it ran on)."""
    parts = world_size() * accum_steps
    if batch_size % parts:
        raise BenchmarkError(f"batch_size {batch_size} is not divisible by {world_size()} processes x accum_steps "
                             f"{accum_steps}; choose a batch_size that is a multiple of {parts}")  # fmt: skip
    return batch_size // parts


def share(n: int) -> range:
    """This process's contiguous share of n items (shares differ by at most one; none is padded or repeated,
    and concatenated in rank order they are the n items in order)."""
    w, r = world_size(), rank()
    return range(r * n // w, (r + 1) * n // w)


def comm_device() -> torch.device:
    # nccl reduces GPU tensors only; gloo is used here on CPU tensors.
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of `tensor` over processes (the same bits on every process), on `tensor`'s device."""
    if world_size() == 1:
        return tensor
    buffer = tensor.to(comm_device(), copy=True)
    dist.all_reduce(buffer)
    return buffer.to(tensor.device)


def sum_gradients(params: list[torch.Tensor]) -> None:
    """Replace every parameter's gradient by its sum over processes, one all_reduce per dtype. A parameter without
    a gradient here (an empty share, an unused branch) counts as zero; one without a gradient on every process
    keeps none, as a single process leaves it (optimizers and FTP skip such parameters)."""
    if world_size() == 1:
        return
    for dtype in dict.fromkeys(p.dtype for p in params):
        group = [p for p in params if p.dtype == dtype]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in group]
        present = torch.tensor([p.grad is not None for p in group], dtype=dtype, device=grads[0].device)
        flat = all_sum(torch.cat([g.reshape(-1) for g in grads] + [present]))
        summed = flat.split([g.numel() for g in grads] + [len(group)])
        for p, g, total, used in zip(group, grads, summed, summed[-1].tolist()):
            g.copy_(total.view(g.shape))  # into the gradient's own layout (channels_last stays so)
            p.grad = g if used else None


def gather_rows(tensor: torch.Tensor) -> torch.Tensor | None:
    """On rank 0, every process's `tensor` (same trailing shape, any number of rows) stacked in rank order;
    None elsewhere. With shares from ``share`` that is the whole, in order."""
    if world_size() == 1:
        return tensor
    rows = torch.zeros(world_size(), dtype=torch.long)
    rows[rank()] = len(tensor)
    rows = all_sum(rows)
    longest = int(rows.max())
    padded = tensor.new_zeros(longest, *tensor.shape[1:])
    padded[: len(tensor)] = tensor
    padded = padded.to(comm_device())
    parts = [torch.empty_like(padded) for _ in range(world_size())] if is_main() else None
    dist.gather(padded, parts, dst=0)
    return torch.cat([p[:n].to(tensor.device) for p, n in zip(parts, rows.tolist())]) if is_main() else None


def broadcast(tensor: torch.Tensor) -> torch.Tensor:
    """Rank 0's `tensor` on every process (in place)."""
    broadcast_all([tensor])
    return tensor


def broadcast_all(tensors: list[torch.Tensor]) -> None:
    """Rank 0's values of `tensors` on every process, in place: one broadcast per dtype."""
    if world_size() == 1:
        return
    for dtype in dict.fromkeys(t.dtype for t in tensors):
        group = [t for t in tensors if t.dtype == dtype]
        flat = torch.cat([t.reshape(-1) for t in group]).to(comm_device())
        dist.broadcast(flat, src=0)
        for t, value in zip(group, flat.split([t.numel() for t in group])):
            t.copy_(value.view(t.shape))


def broadcast_state(model: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every process, as DDP does when it wraps a model: the processes start
    from the same weights even if building the model is not bitwise deterministic."""
    with torch.no_grad():
        broadcast_all(list(model.state_dict().values()))


def broadcast_batchnorm_stats(model: torch.nn.Module) -> None:
    """Rank 0's BatchNorm running statistics on every process (DDP's default, broadcast_buffers): each process
    normalises by its own micro-batch while training (no SyncBatchNorm), so their running statistics drift
    apart, while evaluation, TPGM's eval-mode radius steps and the finalised variants need one model."""
    if world_size() == 1:
        return
    stats = [t for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats
             for t in (m.running_mean, m.running_var, m.num_batches_tracked)]  # fmt: skip
    if stats:
        broadcast_all(stats)


def all_objects(obj) -> list:
    """`obj` of every process, in rank order, on every process (small things: RNG states, device names)."""
    if world_size() == 1:
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def any_flag(*flags: bool) -> list[bool]:
    """Each flag or-ed over processes, so that every process takes the same decision."""
    if world_size() == 1:
        return list(flags)
    return [bool(v) for v in all_sum(torch.tensor(flags, dtype=torch.long)).tolist()]


def seed_ranks(seed: int) -> None:
    """Distinct random streams per process for what each draws on its own images (augmentation, FSR's
    amplitude mixes); one process keeps the stream it has, so single-device runs are unchanged."""
    if world_size() > 1:
        torch.manual_seed(seed * 1_000_003 + rank())


def epoch_permutation(n: int, generator: torch.Generator) -> torch.Tensor:
    """The order of an epoch, exactly as DataLoader(shuffle=True, generator=generator) drew it: a DataLoader
    takes its workers' base seed from the generator first, then RandomSampler's randperm. Kept so that runs
    shuffle as they did before this sampler existed (committed records stay reproducible bit for bit)."""
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    return torch.randperm(n, generator=generator)


class StepSampler(Sampler[int]):
    """This process's training images of one epoch, from optimizer step `start` on. The epoch's order depends on
    the generator only (epoch_generator(seed, epoch)); it is cut into optimizer steps of `batch_size` images
    (the last one shorter, nothing dropped) and each step into contiguous shares, one per process. With the
    per-device batch a divisor of the full shares, batching this stream gives each step's micro-batches.
    set_epoch moves it to another epoch, as DistributedSampler's does: a loader with persistent workers keeps
    its sampler from one epoch to the next."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, start: int = 0):
        self.n, self.batch_size = n, batch_size
        self.set_epoch(generator, start)

    def set_epoch(self, generator: torch.Generator, start: int = 0) -> None:
        """The epoch whose order `generator` (epoch_generator(seed, epoch)) gives, from optimizer step `start` on."""
        self.start, self.order = start, epoch_permutation(self.n, generator)

    def steps(self) -> range:
        return range(self.start, -(-self.n // self.batch_size))

    def step_size(self, step: int) -> int:
        return min(self.batch_size, self.n - step * self.batch_size)

    def share(self, step: int) -> range:
        """Positions in the epoch's order of this process's images of `step`."""
        mine = share(self.step_size(step))
        offset = step * self.batch_size
        return range(offset + mine.start, offset + mine.stop)

    def __iter__(self):
        for step in self.steps():
            mine = self.share(step)
            yield from self.order[mine.start : mine.stop].tolist()

    def __len__(self) -> int:
        return sum(len(self.share(step)) for step in self.steps())


def shard_batch(batch):
    """This process's part of a batch that every process holds (TPGM's held-out batches), and its weight: its
    share of the batch's images, so that weighted per-process means sum to the whole batch's mean."""
    x, y = batch
    mine = share(len(y))
    return x[mine.start : mine.stop], y[mine.start : mine.stop], len(mine) / len(y)
