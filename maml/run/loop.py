"""The life of a training run, for both front ends: resume, checkpoints, stop requests and
signals, the NaN guard, TensorBoard and progress. A front end supplies only what differs: its
state, one meta-iteration with its logging, and what to draw at the start and at every stop.

A run is resumable from the moment it starts: the initial state is checkpointed before the first
iteration, and every file is written atomically. One process at a time trains a run folder (a
lock), with one thread count from start to end (``maml.run.threads``): a resumed run equals an
uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Protocol

import torch
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams
from tqdm import tqdm

from maml.run import distributed
from maml.run.checkpoint import load_checkpoint, save_checkpoint
from maml.run.config import read_toml, to_toml
from maml.run.distributed import ONE_PROCESS, Ranks
from maml.run.errors import TrainingError
from maml.run.folder import EventWriter, RunLock, WriteError, write_atomic
from maml.run.provenance import append_history, run_record
from maml.run.threads import ThreadBudget, default_threads, fixed_threads

CHECKPOINT = "checkpoint.pt"


class NonFinite(Exception):
    """Raised by a front end's iteration when its loss or parameters are not finite; the front
    end has put its state back as it was before the iteration."""


class Clock:
    """Training time of the run, summed over its resumes (``elapsed`` in the checkpoint)."""

    def __init__(self, before: float) -> None:
        self.before, self.started = before, time.perf_counter()

    def __call__(self) -> float:
        return self.before + time.perf_counter() - self.started


class FrontEnd(Protocol):
    """What a front end's trainer supplies to :func:`run`.

    Under torchrun every rank runs the loop; ``writer`` is None except on rank 0, and a front
    end's collectives (all-reduces) must run on every rank, its writing on rank 0 alone.
    """

    label: str  # the progress bar's
    device: torch.device  # of the collectives (CUDA with NCCL, the CPU with gloo)
    config: Any  # the resolved settings (no ``auto`` left where the run chose), for config.toml

    def describe(self) -> str:
        """One line printed when the run starts."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint holds besides the iteration and the training time."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def iteration(
        self, iteration: int, writer: SummaryWriter | None, clock: Clock
    ) -> dict[str, str]:
        """One meta-iteration (0-based) and its logging; returns the progress bar's postfix."""

    def metrics(self) -> list[str]:
        """Scalar tags shown as metrics in TensorBoard's HParams tab."""

    def facts(self) -> dict[str, Any]:
        """What the run found at its start that its settings do not say (the classes of each
        split, say): added to history.toml."""

    def snapshot(self, writer: SummaryWriter, done: int) -> None:
        """Figures drawn at the start and whenever the run stops."""

    def close(self) -> None: ...


class StopRequest:
    """The first Ctrl-C or SIGTERM asks to stop after the iteration (acknowledged at once); a
    second one stops at once. Either way the run stays resumable from its last checkpoint."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.at_once = False

    def __enter__(self) -> StopRequest:
        self._previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in self._previous:
            signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:
            # Code the exception passes through may turn it into another (a C extension being
            # imported reports an ImportError): ``run`` reads this flag, not the exception's type.
            self.at_once = True
            raise Stopped(signum)
        self.signal = signum
        print(
            f"\n{signal.Signals(signum).name}: stopping after this iteration (again to stop now)",
            file=sys.stderr,
            flush=True,
        )

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


class Stopped(KeyboardInterrupt):
    """The run stopped on a signal; the command exits with 128 + its number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def train(
    build: Callable[[Any, torch.device, Ranks], FrontEnd],
    config: Any,
    run_dir: Path,
    resume: bool = False,
) -> Path:
    """Join torchrun's ranks (if any), fix the run's thread count, build the front end with the
    resolved settings and :func:`run` it; returns the checkpoint's path.

    ``config`` needs ``device``, ``meta_batch``, ``threads`` and ``follow_load``; ``build`` makes
    the front end from the settings with the device and thread count the run chose.
    """
    ranks, device = distributed.start(config.device, config.meta_batch)
    threads = config.threads or default_threads()
    config = dataclasses.replace(config, device=device.type, threads=threads)
    # Rank 0 holds the folder's lock before the front end loads anything (its data, say).
    lock = RunLock(run_dir) if ranks.main else nullcontext()
    with distributed.group(ranks), fixed_threads(threads), lock:
        front = build(config, device, ranks)
        try:
            return run(front, run_dir, resume, ranks)
        finally:
            front.close()


def run(front: FrontEnd, run_dir: Path, resume: bool, ranks: Ranks = ONE_PROCESS) -> Path:
    """Train ``front`` for its ``config.iterations`` in ``run_dir`` (or continue the run there).

    Every rank loads the checkpoint; rank 0 alone writes the run's files and shows progress. The
    caller holds the folder's lock (:func:`train` does) and closes ``front``.
    """
    config, main = front.config, ranks.main
    iterations = config.iterations
    path = run_dir / CHECKPOINT
    start, elapsed = 0, 0.0
    if resume and path.exists():
        state = load_checkpoint(path, map_location="cpu")
        front.load_state_dict(state)
        start, elapsed = state["iteration"], state["elapsed"]
    elif resume:
        print(f"{run_dir} has no checkpoint yet (stopped while starting): starting it afresh")
        resume = False
    if start >= iterations:
        if main:
            print(
                f"{run_dir} has done {start} iterations already; --resume {run_dir} "
                f"--iterations N (more than {start}) continues it"
            )
        return path
    if main:
        _record_start(config, run_dir, resume, ranks, front.facts())
    clock = Clock(elapsed)
    saved = start if resume else None
    budget = ThreadBudget(enabled=config.follow_load)

    def checkpoint(done: int) -> None:
        nonlocal saved
        if main:
            state = {"iteration": done, "elapsed": clock(), **front.state_dict()}
            values = dataclasses.asdict(config)
            try:
                save_checkpoint(path, {**state, "config": values})
            except WriteError as error:
                kept = f"the last good checkpoint (iteration {saved}) is kept"
                if saved is None:
                    kept = "none was written"
                raise WriteError(f"{error}; {kept}") from None
        saved = done

    # A resumed run logs every step after its checkpoint again: the events a stopped process
    # logged there are dropped (TensorBoard's purge), those up to the checkpoint kept once.
    writer = EventWriter(run_dir, purge_step=start + 1 if resume else 0) if main else None
    progress = tqdm(total=iterations, initial=start, desc=front.label, unit="it", disable=not main)
    done = start
    stop = StopRequest()
    failed = False
    try:
        with stop:
            if not resume:
                checkpoint(0)
                if writer is not None:
                    _log_settings(writer, config, front.metrics())
                # Not on resume: a run that stopped drew it then (a killed one has its last
                # periodic figure), and a second figure at one step would show twice.
                front.snapshot(writer, start)
            if main:
                where = f" on {ranks.world} ranks" if ranks.world > 1 else ""
                progress.write(f"run {run_dir}{where}: {front.describe()}", file=sys.stderr)
            threads = None
            for iteration in range(start, iterations):
                if budget.update() != threads and writer is not None:
                    threads = budget.threads
                    writer.add_scalar("charts/torch_threads", threads, iteration + 1)
                try:
                    postfix = front.iteration(iteration, writer, clock)
                except NonFinite as error:
                    checkpoint(iteration)
                    raise TrainingError(
                        f"{error} at iteration {iteration + 1}; stopped. The last good state "
                        f"(iteration {iteration}) is in {path}"
                    ) from None
                done = iteration + 1
                progress.set_postfix(postfix, refresh=False)
                progress.update(1)
                # Every rank stops at the same iteration when any of them was asked to.
                stopping = ranks.any(stop.signal is not None, front.device)
                if done == iterations or done % config.checkpoint_every == 0 or stopping:
                    checkpoint(done)
                if stopping and done < iterations:
                    front.snapshot(writer, done)
                    ranks.barrier()
                    progress.close()
                    if main:
                        print(f"stopped at iteration {done}; continue with --resume {run_dir}")
                    raise Stopped(stop.signal or signal.SIGTERM)
            front.snapshot(writer, done)
            ranks.barrier()
    except BaseException as error:
        failed = True
        if not stop.at_once:
            raise
        if main:
            progress.close()
            print(
                f"\nstopped at once; --resume {run_dir} continues from iteration {saved or 0}",
                file=sys.stderr,
            )
        if isinstance(error, Stopped):
            raise
        raise Stopped(stop.signal or signal.SIGTERM) from None
    finally:
        progress.close()
        budget.restore()
        try:
            if writer is not None:
                writer.close()
        except WriteError:
            if not failed:  # else the error that stopped the run is the one to report
                raise
    return path


def _record_start(
    config: Any, run_dir: Path, resume: bool, ranks: Ranks, facts: dict[str, Any]
) -> None:
    """Write the run's settings, and add this start to its history with what a resume changed,
    the ranks, the thread count and the front end's ``facts``."""
    config_path = run_dir / "config.toml"
    skip = _inapplicable(config)
    changed = {}
    if resume and config_path.is_file():
        before = read_toml(config_path)
        changed = {
            k: v
            for k, v in dataclasses.asdict(config).items()
            if k not in skip and before.get(k, v) != v
        }
    write_atomic(config_path, to_toml(config, skip))
    event = "resume" if resume else "start"
    record = run_record(event, ranks=ranks.world, threads=config.threads, **facts)
    if changed:
        record["changed"] = changed
    append_history(run_dir, record)


def _inapplicable(config: Any) -> set[str]:
    """Settings that do not apply to the run (the MLP's width for an image task, say)."""
    inapplicable = getattr(config, "inapplicable", None)
    return set(inapplicable()) if inapplicable is not None else set()


def _log_settings(writer: SummaryWriter, config: Any, metrics: list[str]) -> None:
    """The run's settings as a table in the Text tab and as hyperparameters in the HParams tab,
    with ``metrics`` (scalar tags the run logs) as the metrics beside them."""
    skip = _inapplicable(config)
    values = {k: v for k, v in dataclasses.asdict(config).items() if k not in skip}
    rows = "\n".join(f"|{k}|{v}|" for k, v in values.items())
    writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + rows)
    file_writer = writer._get_file_writer()
    for summary in hparams(values, dict.fromkeys(metrics, 0.0)):
        file_writer.add_summary(summary)
