"""Batches and precision: the DataLoader every part of a run uses, and autocast on GPU.

A run's batches and augmentations are the same whatever its worker count. Order: the sampler draws from
the caller's generator in the main process, and the generator moves the same on every pass (see
Batches). Augmentation: each sample is transformed with torch's, Python's and NumPy's global generators
seeded from (the pass's key, the sample's index), where the key is a hash of the loader's generator (the
global one when it has none) as the pass starts: for a training epoch, a function of (run seed, epoch).
"""
from __future__ import annotations

import hashlib
import itertools
import os
import random
import struct

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler

# Batches each worker keeps ready: two hide a slow decode without holding many batches in shared memory
# (one of ImageNet's 512-image float batches at 224 px is 300 MB).
PREFETCH = 2


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity (what SLURM or taskset grants), else the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_workers() -> int:
    """Loader worker processes that fit this process's CPUs: one per CPU up to 8, less one for the main process
    (which trains)."""
    return max(0, min(8, usable_cpus()) - 1)


def autocast(device: torch.device):
    # bf16 autocast on GPU (no loss scaling needed); full precision on CPU, where it is not faster.
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def loader(dataset, batch_size: int, shuffle=False, generator=None, workers: int = 0, sampler=None,
           persistent: bool = False, parts: list[int] | None = None) -> DataLoader:
    """Batches of `dataset` in `workers` processes (0: in this one). shuffle: a permutation drawn from
    `generator`; sampler (e.g. a DistributedSampler): its order instead. persistent: keep the workers
    between passes, for a loader iterated more than once (reseed its generator between passes). parts: the
    lengths of consecutive parts of that order (e.g. eval sets one after another) batched apart, each into the
    batches it would have alone, so that one loader (one start of its workers) serves them all."""
    if shuffle and sampler is not None:
        raise ValueError("shuffle and sampler are exclusive: the sampler orders the samples")
    if sampler is None:
        sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    keyed = KeyedSampler(sampler, generator)
    batching = dict(batch_size=batch_size, sampler=keyed, drop_last=False) if parts is None else dict(
        batch_sampler=PartBatches(keyed, parts, batch_size))  # fmt: skip
    return Batches(SeededSamples(dataset), **batching, generator=generator, num_workers=workers,
                   persistent_workers=persistent and workers > 0, prefetch_factor=PREFETCH if workers > 0 else None,
                   pin_memory=torch.cuda.is_available())  # fmt: skip


class Batches(DataLoader):
    """A DataLoader whose generator moves the same on every pass whatever its workers. DataLoader draws its
    workers' base seed from the generator when a pass starts, except when it reuses persistent workers;
    drawing it here then keeps the following shuffles (and so the batch order) those of 0 workers."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.passes = 0

    def __iter__(self):
        if self.persistent_workers and self.passes:
            torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        self.passes += 1
        return super().__iter__()


def pass_key(generator: torch.Generator | None) -> int:
    """64 bits naming a pass: a hash of the generator's state as the pass starts (it is not drawn from, so
    the batch order stays as it would be without augmentation seeds)."""
    state = (generator or torch.default_generator).get_state()
    return int.from_bytes(hashlib.blake2b(state.numpy().tobytes(), digest_size=8).digest(), "little")


def sample_seed(key: int, index: int) -> int:
    return int.from_bytes(hashlib.blake2b(struct.pack("<QQ", key, index), digest_size=8).digest(), "little")


class KeyedSampler(Sampler):
    """`sampler`'s indices, each paired with the pass's key: workers (persistent ones too) receive it with
    the index, in the main process, so it cannot depend on which worker loads the sample."""

    def __init__(self, sampler, generator: torch.Generator | None):
        self.sampler, self.generator = sampler, generator

    def __len__(self):
        return len(self.sampler)

    def __iter__(self):
        # A generator function: the key is taken at the first batch, after DataLoader's draw, on every path.
        key = pass_key(self.generator)
        for index in self.sampler:
            yield key, index


class PartBatches(Sampler):
    """`samples` in batches of `batch_size`, cut at the end of each part (`lengths` consecutive samples each)."""

    def __init__(self, samples, lengths: list[int], batch_size: int):
        self.samples, self.lengths, self.batch_size = samples, lengths, batch_size

    def __len__(self):
        return sum(-(-n // self.batch_size) for n in self.lengths)

    def __iter__(self):
        samples = iter(self.samples)
        for n in self.lengths:
            part = list(itertools.islice(samples, n))
            for start in range(0, n, self.batch_size):
                yield part[start : start + self.batch_size]


class SeededSamples(Dataset):
    """`dataset` read at (key, index) pairs, each sample transformed under global generators seeded from
    its pair; the caller's generator states are put back after each batch (the training loop's own random
    draws, e.g. FSR's mixing, must not depend on the data's)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, item):
        # A plain index comes from code that reads a loader's .dataset itself (ctx.train_loader.dataset, a
        # Subset of it): the sample as the dataset gives it; a loader over that seeds it.
        return self.__getitems__([item])[0] if isinstance(item, tuple) else self.dataset[item]

    def __getitems__(self, items):
        # Saved once a batch: NumPy's state takes ~70 us to save and restore, ~10x a sample's seeding.
        saved = torch.get_rng_state(), random.getstate(), np.random.get_state()
        try:
            out = []
            for key, index in items:
                seed = sample_seed(key, index)
                torch.default_generator.manual_seed(seed)  # CPU only: CUDA's generator is the model's
                random.seed(seed)
                np.random.seed(seed & 0xFFFF_FFFF)
                out.append(self.dataset[index])
            return out
        finally:
            torch.set_rng_state(saved[0])
            random.setstate(saved[1])
            np.random.set_state(saved[2])
