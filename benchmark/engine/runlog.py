"""Optional logs of a run as it trains, beside its record (which keeps its curves either way): `benchmark run
--log tensorboard` writes TensorBoard event files under <results>/tensorboard/<suite>/<run id>/.

Steps count optimizer steps from 1; each step logs its loss terms (train/<term>) and the learning rate each
parameter group stepped with (lr/group<k>), each epoch the values its record curves gain (epoch/<curve>), and
the end of the run every evaluation row (eval/<variant>/<eval set>/<metric>)."""
from __future__ import annotations

from pathlib import Path

from benchmark.errors import BenchmarkError

LOGS = ("tensorboard",)
INSTALL = "pip install 'oodbench[log]'"


class RunLog:
    """What a run reports as it trains: by default nothing."""

    def begin(self, done_steps: int) -> None:
        """Training starts after `done_steps` optimizer steps (0 unless resumed from a checkpoint)."""

    def step(self, step: int, terms: dict, optimizer) -> None:
        """Optimizer step `step` is taken: its loss terms (tensors) and the optimizer's learning rates."""

    def epoch(self, step: int, curves: dict[str, list]) -> None:
        """An epoch ended at `step`: each curve has just gained its value for it."""

    def evals(self, rows: list[dict]) -> None:
        """The run's evaluation rows."""

    def close(self) -> None:
        pass


NO_LOG = RunLog()


class TensorBoardLog(RunLog):
    """TensorBoard event files in `folder`, as the module docstring lists them."""

    def __init__(self, folder: Path):
        self.folder, self.writer, self.last_step = Path(folder), None, 0

    def begin(self, done_steps: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # TensorBoard hides what earlier writers logged at or after purge_step: after a resume, the steps an
        # interrupted attempt took past its checkpoint (about to be redone); after a fresh start, all of it.
        self.writer = SummaryWriter(str(self.folder), purge_step=done_steps + 1 if done_steps else 0)
        self.last_step = done_steps

    def step(self, step: int, terms: dict, optimizer) -> None:
        for name, value in terms.items():
            self.writer.add_scalar(f"train/{name}", value.item(), step)
        for k, group in enumerate(optimizer.param_groups):
            self.writer.add_scalar(f"lr/group{k}", group["lr"], step)
        self.last_step = step

    def epoch(self, step: int, curves: dict[str, list]) -> None:
        for name, values in curves.items():
            self.writer.add_scalar(f"epoch/{name}", values[-1], step)
        self.writer.flush()  # on disk with the epoch's checkpoint: what a resume continues from

    def evals(self, rows: list[dict]) -> None:
        if self.writer is None:  # nothing trained (e.g. zeroshot): the evaluation is the whole log
            self.begin(0)
        for row in rows:
            self.writer.add_scalar(f"eval/{row['variant']}/{row['eval']}/{row['metric']}", row["value"], self.last_step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def require(kind: str | None) -> None:
    """A one-line error, before anything runs, when `kind` is unknown or its package is missing."""
    if kind is None:
        return
    if kind not in LOGS:
        raise BenchmarkError(f"unknown log {kind!r}; valid: {', '.join(LOGS)}")
    try:
        import tensorboard  # noqa: F401 - torch.utils.tensorboard writes its event files with it
    except ImportError:
        raise BenchmarkError(f"--log tensorboard needs the tensorboard package: {INSTALL}") from None


def open_log(kind: str | None, folder: Path) -> RunLog:
    """The log of one run: `kind` None logs nothing; 'tensorboard' writes event files into `folder`."""
    require(kind)
    return NO_LOG if kind is None else TensorBoardLog(folder)
