"""Meta-iterations under torchrun: time, throughput, and what the all-reduces cost, on 1 and more
ranks of this machine; then, on paper, the iteration time expected on many machines.

    python -m benchmarks.speed_distributed [--ranks 1 2] [--workloads omniglot-20way
        halfcheetah-vel] [--data ../shared/data/omniglot] [--warmup 1] [--iterations 4]
        [--bandwidth 10e9] [--latency 50e-6] [--write]

Each cell launches the training command itself (``torchrun --standalone --nproc-per-node R``,
gloo, the preset as shipped, validation off) into a scratch run folder and reads every timed
iteration from rank 0's TensorBoard log: the iteration's wall time, the time rank 0 spent in
all-reduces (the transfer and the wait for the slowest rank), their number and bytes. Compute is
the rest. Ranks share this machine's cores (each gets its share of MuJoCo's threads and torch's).

The projection to N machines assumes a ring all-reduce over a network of ``--bandwidth`` bytes/s
with ``--latency`` seconds per message step: ``2 (N - 1) / N * bytes / bandwidth + 2 (N - 1) *
latency`` per all-reduce, and compute that divides by the ranks except what every rank repeats
(drawing the whole meta-batch's tasks, the conjugate gradient's vector work, the optimizer step):
``compute(N) = split / N + repeated``. The two parts come from one more cell, a single rank pinned
to the cores each rank of the largest group gets (``split + repeated``), against that group
(``split / R + repeated``): the same cores per rank on both sides. Ranks on one machine share its
memory bandwidth, machines do not, so the projection says what grows, not a promise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from benchmarks.quality_omniglot import DATA, TEST_ON, TRAIN_ON
from benchmarks.results import write_section
from maml.run.config import read_toml

WORKLOADS = {
    # name: (training module, the flags that pick its preset)
    "omniglot-20way": ("maml_sl.train", ["--config", "omniglot-20way"]),
    "halfcheetah-vel": ("maml_rl.train", ["--env", "halfcheetah-vel"]),
    # Python envs (the [metaworld] extra): each rank steps its tasks in its cores' worker processes.
    "metaworld-ml10": ("maml_rl.train", ["--env", "metaworld-ml10"]),
    "sinusoid": ("maml_sl.train", ["--task", "sinusoid"]),  # a quick check of the mechanics
}
PROJECTED_RANKS = (8, 32, 128)


@dataclass
class Cell:
    """Medians over the timed iterations of one workload on one number of ranks."""

    ranks: int
    cores: int  # per rank
    tasks: int  # the meta-batch, as the run's config.toml has it
    seconds: float
    collective_seconds: float
    bytes: float
    calls: float
    env_steps: float  # per iteration, all ranks (0 for supervised runs)

    @property
    def compute(self) -> float:
        return self.seconds - self.collective_seconds


def run_cell(
    workload: str, ranks: int, args: argparse.Namespace, cores: set[int] | None = None
) -> Cell:
    """Time ``workload`` on ``ranks`` ranks (on ``cores`` alone when given)."""
    module, flags = WORKLOADS[workload]
    rl = module.startswith("maml_rl")
    total = args.warmup + args.iterations
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", str(ranks), "-m", module, *flags]
    command += ["--iterations", str(total), "--checkpoint-every", str(10 * total)]
    command += ["--device", args.device]
    if rl:
        command += ["--val-every", "0"]
    else:
        command += ["--log-every", "1", "--val-every", str(10 * total)]
        command += ["--figure-every", str(10 * total)]
        if workload.startswith("omniglot"):  # quality_omniglot's sets
            command += ["--data", args.data, "--cache-dir", args.cache]
            command += ["--train-on", TRAIN_ON, "--test-on", TEST_ON]
    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run(
            [*command, "--run-dir", folder],
            capture_output=True,
            text=True,
            env=_environment(),
            preexec_fn=None if cores is None else lambda: os.sched_setaffinity(0, cores),
        )
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
        events = EventAccumulator(folder).Reload()
        tasks = read_toml(Path(folder) / "config.toml")["meta_batch"]
    tags = set(events.Tags()["scalars"])

    def timed(tag: str) -> list[float]:
        """The tag's values at the timed iterations (zeros where one rank logs none)."""
        if tag not in tags:
            return [0.0] * args.iterations
        return [e.value for e in events.Scalars(tag) if e.step > args.warmup]

    def median(tag: str) -> float:
        return statistics.median(timed(tag))

    if rl:
        seconds = median("time/iteration_seconds")
        steps = statistics.median(
            rate * sampling
            for rate, sampling in zip(
                timed("charts/env_steps_per_second"), timed("time/sampling_seconds"), strict=True
            )
        )
    else:  # iterations_per_second leaves out the logged measures (maml_sl.trainer)
        seconds, steps = 1 / median("charts/iterations_per_second"), 0.0
    return Cell(
        ranks,
        len(cores) if cores is not None else len(os.sched_getaffinity(0)) // ranks,
        tasks,
        seconds,
        median("time/collectives_seconds"),
        median("charts/bytes_all_reduced"),
        median("charts/all_reduces"),
        steps,
    )


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)  # a run chooses its threads (torchrun sets 1 per rank)
    return env


def ring_seconds(ranks: int, cell: Cell, bandwidth: float, latency: float) -> float:
    """An iteration's all-reduces over a ring of ``ranks`` machines."""
    if ranks == 1:
        return 0.0
    per_call_bytes = cell.bytes / max(cell.calls, 1)
    per_call = 2 * (ranks - 1) / ranks * per_call_bytes / bandwidth + 2 * (ranks - 1) * latency
    return cell.calls * per_call


def report(workload: str, cells: list[Cell], pinned: Cell, args: argparse.Namespace) -> list[str]:
    tasks = cells[0].tasks
    rl = any(c.env_steps for c in cells)
    lines = [
        f"### {workload} (meta-batch {tasks})",
        "",
        "| ranks | cores per rank | iteration (s) | compute (s) | in all-reduces (s) | "
        "all-reduces | MB all-reduced | tasks/s |" + (" env steps/s |" if rl else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if rl else ""),
    ]
    for cell in [pinned, *cells]:
        steps = f" {cell.env_steps / cell.seconds:,.0f} |" if rl else ""
        lines.append(
            f"| {cell.ranks} | {cell.cores} | {cell.seconds:.3f} | {cell.compute:.3f} | "
            f"{cell.collective_seconds:.3f} | {cell.calls:.0f} | {cell.bytes / 1e6:.2f} | "
            f"{tasks / cell.seconds:.1f} |{steps}"
        )
    group = max(cells, key=lambda c: c.ranks)
    share = group.ranks / (group.ranks - 1)
    split = max((pinned.compute - group.compute) * share, 0.0)
    repeated = max(pinned.compute - split, 0.0)
    per_task = split / tasks
    lines += [
        "",
        f"From the rank pinned to {pinned.cores} core(s) and the {group.ranks} ranks: compute "
        f"split by task {split:.3f} s ({per_task * 1e3:.0f} ms a task), repeated on every rank "
        f"{repeated:.3f} s. On paper, machines like one of those ranks, over "
        f"{args.bandwidth / 1e9:g} GB/s with {args.latency * 1e6:g} us per message step:",
        "",
        "| machines | compute (s) | all-reduces (s) | iteration (s) | speed-up | meta-batch "
        "below which all-reduces outlast the split compute |",
        "|---|---|---|---|---|---|",
    ]
    for n in PROJECTED_RANKS:
        compute = split / n + repeated
        comm = ring_seconds(n, group, args.bandwidth, args.latency)
        crossover = "-" if per_task == 0 else f"{n * comm / per_task:.0f}"
        lines.append(
            f"| {n} | {compute:.3f} | {comm:.4f} | {compute + comm:.3f} | "
            f"{pinned.seconds / (compute + comm):.1f}x | {crossover} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--workloads",
        nargs="+",
        choices=sorted(WORKLOADS),
        default=["omniglot-20way", "halfcheetah-vel"],
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--data", default=str(DATA), help="Omniglot's folder")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "maml-omniglot"))
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--bandwidth", type=float, default=10e9, help="bytes/s of the network")
    parser.add_argument("--latency", type=float, default=50e-6, help="seconds per message step")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    lines = [
        f"Median of {args.iterations} iterations after {args.warmup} of warm-up on {args.device}, "
        "each cell a fresh `torchrun --standalone` of the training command; 'in all-reduces' is "
        "rank 0's time in them, transfer and waiting for the slowest rank; compute is the rest. "
        "Each table's first row is one rank pinned to the cores a rank of the largest group gets.",
        "",
    ]
    if max(args.ranks) < 2:
        parser.error(f"--ranks {args.ranks}: the projection needs a group of 2 or more")
    available = sorted(os.sched_getaffinity(0))
    per_rank = len(available) // max(args.ranks)
    if per_rank < 1:
        parser.error(f"--ranks {max(args.ranks)} is more than the {len(available)} cores here")
    for workload in args.workloads:
        cells = [run_cell(workload, r, args) for r in args.ranks]
        pinned = run_cell(workload, 1, args, set(available[:per_rank]))
        lines += report(workload, cells, pinned, args) + [""]
    body = "\n".join(lines)
    print(body)
    if args.write:
        # Meta-World runs in the [metaworld] extra's environment: a section of its own.
        python_envs = " metaworld" if args.workloads == ["metaworld-ml10"] else ""
        write_section(f"speed_distributed{python_envs} ({args.device})", body, __spec__.name)


if __name__ == "__main__":
    main()
