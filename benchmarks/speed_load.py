"""Meta-iteration time alone and beside a competing CPU-bound process, for OpenMP wait settings.

torch's CPU build runs its parallel regions on libgomp, whose idle workers spin for a while
before they sleep. With more busy threads than cores the spinning takes the cores from the
threads that have work. Each cell runs in a fresh process (libgomp reads its settings once, when
torch loads) and reports the median time of one workload:

- sinusoid: a second-order meta-iteration of the sinusoid MLP on the vmap path (meta-batch 25);
- omniglot: a second-order 5-way 1-shot meta-iteration of conv4 through ``meta_backward``
  (meta-batch 8, 15 query images per class, one inner step);
- rl: one halfcheetah-vel meta-iteration as the trainer runs it (sampling with MuJoCo's threads,
  adaptation, TRPO step) at a reduced size (10 tasks x 4 episodes).

Settings, each on the run's fixed team of one thread per core unless it says otherwise: torch's
default (libgomp's spin of 300,000 before a waiting thread sleeps), the toolkit's default (the
trainers' spin of 10,000, set by ``maml/__init__.py`` when torch loads after it), the trainers'
``--follow-load`` (the same spin, and ``maml.run.threads.ThreadBudget`` resizing the team to the
cores other processes leave; it is given 3 seconds to measure before the timing: results then
depend on the load), no spin (``GOMP_SPINCOUNT=0``, what ``OMP_WAIT_POLICY=PASSIVE`` does), and
one torch thread. Only the thread count changes what a run computes: the first, second and fourth
settings give the same parameters, alone or loaded.

Competitors: none, a pure-Python busy loop (one thread), and a second torch process (2 threads,
libgomp's defaults: another training).

``--spins N ...`` adds a row per spin count N on the fixed team (how the trainers' 10,000 was
chosen: shorter spins give up idle speed, longer ones the speed under load).

    python -m benchmarks.speed_load [--workloads sinusoid omniglot rl] [--spins N ...] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# First, as in the trainers: it sets OpenMP's spin before anything loads torch.
import maml  # noqa: F401
from benchmarks.results import write_section

SETTINGS = {
    "torch's default (spin 300,000)": {"GOMP_SPINCOUNT": "300000"},
    "toolkit default (spin 10,000)": {},
    "--follow-load (thread budget)": {"MAML_BENCH_THREAD_BUDGET": "1"},
    "no spin (passive)": {"GOMP_SPINCOUNT": "0"},
    "1 torch thread": {"OMP_NUM_THREADS": "1"},
}
COMPETITORS = {
    "alone": None,
    "beside a Python busy loop": "while True: pass",
    "beside a torch process": (
        "import torch\n"
        "torch.set_num_threads(2)\n"
        "a = torch.randn(64, 64)\n"
        "while True:\n"
        "    a = torch.tanh(a @ a * 0.01)\n"
    ),
}
REPEATS = {"sinusoid": 100, "omniglot": 8, "rl": 3}


def sinusoid_step():
    import torch

    from maml import MAML
    from maml_sl.losses import mse
    from maml_sl.models import mlp
    from maml_sl.tasks.sinusoid import SinusoidTasks

    torch.manual_seed(0)
    learner = MAML(mlp(1, 1), mse, inner_lr=0.01, path="vmap")
    support, query = SinusoidTasks().sample(25, 10, 10, torch.Generator().manual_seed(0))
    return lambda: learner.meta_loss(support, query).backward()


def omniglot_step():
    import torch

    from maml import MAML
    from maml_sl.losses import cross_entropy
    from maml_sl.models import conv4

    torch.manual_seed(0)
    learner = MAML(conv4(1, 5), cross_entropy, inner_lr=0.4)
    g = torch.Generator().manual_seed(0)
    support = (torch.rand(8, 5, 1, 28, 28, generator=g), torch.arange(5).expand(8, 5))
    labels = torch.arange(5).repeat_interleave(15).expand(8, 75)
    query = (torch.rand(8, 75, 1, 28, 28, generator=g), labels)
    return lambda: learner.meta_backward(support, query)


def rl_step():
    import torch

    from maml_rl.build import build
    from maml_rl.config import TrainConfig
    from maml_rl.meta_update import trpo_step
    from maml_rl.trainer import sample_iteration, trpo_settings

    config = TrainConfig(env="halfcheetah-vel", frame_skip=1, meta_batch=10, rollouts=4)
    config.device = "cpu"
    device = torch.device("cpu")
    learner, sampler = build(config, device)
    settings = trpo_settings(config)
    counter = iter(range(10**6))

    def step():
        iteration = next(counter)
        train, valid, adapted, _ = sample_iteration(learner, sampler, config, iteration, device)
        trpo_step(learner, train, valid, settings, torch.Generator().manual_seed(0), adapted)

    return step


WORKLOADS = {"sinusoid": sinusoid_step, "omniglot": omniglot_step, "rl": rl_step}


def measure(workload: str) -> tuple[float, int]:
    """Median seconds of the workload's step in this process, after untimed steps (at least two,
    and 3 seconds' worth where the thread budget runs), and the threads torch ended with."""
    import torch

    from maml.run.threads import ThreadBudget

    if os.environ.get("OMP_NUM_THREADS") == "1":
        torch.set_num_threads(1)
    budget = ThreadBudget(enabled=bool(os.environ.get("MAML_BENCH_THREAD_BUDGET")))
    step = WORKLOADS[workload]()
    warm = time.perf_counter() + (3.0 if budget.enabled else 0.0)
    for _ in range(2):
        budget.update()
        step()
    while time.perf_counter() < warm:
        budget.update()
        step()
    times = []
    for _ in range(REPEATS[workload]):
        budget.update()
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times), torch.get_num_threads()


def run_cell(workload: str, setting: dict[str, str]) -> tuple[float, int]:
    """Seconds per step and torch's final thread count, measured in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    env.update(setting)
    command = [sys.executable, "-m", "benchmarks.speed_load", "--one", workload]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["seconds"], result["threads"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", choices=sorted(WORKLOADS), default=["sinusoid"])
    parser.add_argument(
        "--spins", type=int, nargs="+", default=[], metavar="N", help="extra spin counts"
    )
    parser.add_argument("--one", choices=sorted(WORKLOADS), help="internal: measure here")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.one:
        seconds, threads = measure(args.one)
        print(json.dumps({"seconds": seconds, "threads": threads}))
        return
    settings = dict(SETTINGS)
    for spin in args.spins:
        settings[f"spin {spin:,}"] = {"GOMP_SPINCOUNT": str(spin)}
    tables = []
    for workload in args.workloads:
        unit, scale = ("ms", 1000) if workload == "sinusoid" else ("s", 1)
        rows = [
            "| setting | " + " | ".join(COMPETITORS) + " |",
            "|---|" + "---|" * len(COMPETITORS),
        ]
        cells = {name: [] for name in settings}
        for competitor, code in COMPETITORS.items():
            process = None
            if code is not None:
                env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
                process = subprocess.Popen([sys.executable, "-c", code], env=env)
                time.sleep(2)
            try:
                for name, setting in settings.items():
                    seconds, threads = run_cell(workload, setting)
                    cells[name].append(
                        f"{seconds * scale:.{3 if unit == 's' else 1}f} {unit} ({threads})"
                    )
                    print(workload, competitor, name, cells[name][-1], flush=True)
            finally:
                if process is not None:
                    process.kill()
                    process.wait()
        rows += [f"| {name} | " + " | ".join(values) + " |" for name, values in cells.items()]
        tables.append(f"{workload} (median of {REPEATS[workload]}):\n\n" + "\n".join(rows))
    body = (
        "Median time per meta-iteration, each cell a fresh process, with the torch threads it "
        "ended with in brackets (the settings and workloads: the module docstring of "
        "`benchmarks/speed_load.py`).\n\n" + "\n\n".join(tables)
    )
    print(body)
    if args.write:
        write_section("speed_load (cpu)", body, __spec__.name)


if __name__ == "__main__":
    main()
