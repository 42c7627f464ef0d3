"""Training under torchrun: 2 gloo ranks on this machine against one process."""

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from maml.run.checkpoint import load_checkpoint
from tests.conftest import finish, start_process

METAWORLD = importlib.util.find_spec("metaworld") is not None

SINUSOID = ["-m", "maml_sl.train", "--meta-batch", "6", "--val-tasks", "4", "--device", "cpu"]
SINUSOID += ["--log-every", "1", "--val-every", "3", "--checkpoint-every", "1"]
# PYTHONFAULTHANDLER: a rank that aborts prints where each of its threads was.
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "MAML_COLLECTIVE_TIMEOUT": "60",
    "PYTHONFAULTHANDLER": "1",
}


def start(command):
    return start_process(command, env=ENV)


def torchrun(args, ranks=2, timeout=180):
    """Run a training command on ``ranks`` processes; its CompletedProcess."""
    launch = ["--standalone", "--nproc-per-node", str(ranks)]
    return finish(start([sys.executable, "-m", "torch.distributed.run", *launch, *args]), timeout)


def single(args, timeout=180):
    command = [sys.executable, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=ENV)


def assert_same_learner(a, b, atol=1e-6, skip=()):
    first, second = load_checkpoint(a / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
    assert first["iteration"] == second["iteration"]
    for name, value in first["learner"].items():
        if name not in skip:
            torch.testing.assert_close(second["learner"][name], value, atol=atol, rtol=1e-5)


def test_two_ranks_train_the_parameters_of_one_process(tmp_path):
    args = [*SINUSOID, "--iterations", "4"]
    one = single([*args, "--run-dir", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr
    two = torchrun([*args, "--run-dir", str(tmp_path / "two")])
    assert two.returncode == 0, two.stderr
    assert_same_learner(tmp_path / "one", tmp_path / "two")
    assert "on 2 ranks" in two.stderr and two.stdout.count("done:") == 1


def test_two_ranks_train_omniglot_as_one_process(tmp_path):
    from tests.omniglot_fixture import write_omniglot

    data = tmp_path / "omniglot"
    write_omniglot(data, "images_background", alphabets=3, characters=4, seed=0)
    write_omniglot(data, "images_evaluation", alphabets=2, characters=3, seed=1)
    args = ["-m", "maml_sl.train", "--task", "omniglot", "--data", str(data), "--ways", "3"]
    args += ["--shots", "1", "--query", "2", "--meta-batch", "4", "--iterations", "3"]
    args += ["--filters", "8", "--val-tasks", "3", "--device", "cpu", "--inner-lr", "0.4"]
    args += ["--train-on", "images_background", "--test-on", "images_evaluation"]
    assert single([*args, "--run-dir", str(tmp_path / "one")]).returncode == 0
    two = torchrun([*args, "--run-dir", str(tmp_path / "two")])
    assert two.returncode == 0, two.stderr[-2000:]
    # A conv bias just before BatchNorm has a meta-gradient of exactly zero, in float32 a
    # rounding residue that Adam scales up to full steps: it differs with the order of any sum,
    # between two runs of one process on different thread counts too. The rest must agree.
    before_batchnorm = [f"model.{i}.bias" for i in (0, 3, 6, 9)]
    assert_same_learner(tmp_path / "one", tmp_path / "two", atol=1e-6, skip=before_batchnorm)


@pytest.mark.parametrize(
    "env, sampling, estimator, outer",
    [
        ("navigation-2d", "episodes", "reinforce", "trpo"),
        ("halfcheetah-vel", "episodes", "reinforce", "trpo"),
        ("navigation-2d", "steps", "reinforce", "trpo"),
        ("navigation-2d", "steps", "dice", "trpo"),  # whole episodes of several lengths per rank
        ("navigation-2d", "episodes", "lvc", "ppo"),  # ProMP
        ("navigation-2d", "steps", "reinforce", "ppo"),  # MAML-PPO
        ("tests.task_families:PendulumMass", "steps", "lvc", "ppo"),  # a user's family
        pytest.param(
            "metaworld-ml1-reach",
            "episodes",
            "reinforce",
            "trpo",
            marks=pytest.mark.skipif(not METAWORLD, reason="needs the [metaworld] extra"),
        ),
    ],
)
def test_two_ranks_train_a_policy_as_one_process(tmp_path, env, sampling, estimator, outer):
    # Three conjugate-gradient iterations and some damping: ten amplify the float rounding of a
    # sum's order (one process's runs differ as much between thread counts). Not the Ant: its
    # contacts amplify the rounding of a batch's policy outputs into different episodes.
    args = ["-m", "maml_rl.train", "--env", env, "--meta-batch", "4", "--rollouts", "3"]
    args += ["--sampling", sampling, "--inner-estimator", estimator, "--outer", outer]
    args += ["--horizon", "10", "--hidden", "16", "--device", "cpu", "--nthread", "1"]
    args += [
        "--iterations",
        "3",
        "--val-every",
        "0",
        "--cg-iterations",
        "3",
        "--cg-damping",
        "0.01",
    ]
    assert single([*args, "--run-dir", str(tmp_path / "one")]).returncode == 0
    two = torchrun([*args, "--run-dir", str(tmp_path / "two")])
    assert two.returncode == 0, two.stderr[-2000:]
    assert_same_learner(tmp_path / "one", tmp_path / "two", atol=1e-5)
    # Rank 0 logs the means over every rank's tasks.
    for tag in ("returns/after_1_steps", "policy/std_after_1_steps"):
        one, two = (
            [e.value for e in EventAccumulator(str(tmp_path / run)).Reload().Scalars(tag)]
            for run in ("one", "two")
        )
        assert two == pytest.approx(one, rel=1e-4), tag


def test_a_run_moves_between_one_and_two_ranks(tmp_path):
    straight = tmp_path / "straight"
    assert single([*SINUSOID, "--iterations", "6", "--run-dir", str(straight)]).returncode == 0
    for first, then in ((torchrun, single), (single, torchrun)):
        run = tmp_path / first.__name__
        assert first([*SINUSOID, "--iterations", "3", "--run-dir", str(run)]).returncode == 0
        resumed = then(["-m", "maml_sl.train", "--resume", str(run), "--iterations", "6"])
        assert resumed.returncode == 0, resumed.stderr
        assert_same_learner(straight, run)


def test_an_rl_run_resumes_on_another_number_of_ranks(tmp_path):
    args = ["-m", "maml_rl.train", "--env", "navigation-2d", "--meta-batch", "4", "--hidden", "16"]
    args += ["--rollouts", "3", "--horizon", "10", "--device", "cpu", "--nthread", "1"]
    args += ["--val-every", "0", "--cg-iterations", "3", "--cg-damping", "0.01"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert single([*args, "--iterations", "4", "--run-dir", str(straight)]).returncode == 0
    assert torchrun([*args, "--iterations", "2", "--run-dir", str(split)]).returncode == 0
    resumed = single(["-m", "maml_rl.train", "--resume", str(split), "--iterations", "4"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_learner(straight, split, atol=1e-5)


GLOO_THREADS_LEFT = """
import os, torch
from maml.run import distributed
ranks, device = distributed.start("cpu", 2)
with distributed.group(ranks):
    torch.optim.Adam([torch.nn.Parameter(torch.ones(2))], foreach=True)  # imports torch._dynamo
    ranks.sum([torch.ones(2)])
    ranks.barrier()
names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
left = [n for n in names if "gloo" in n]
os.write(1, f"rank {ranks.rank}: gloo threads left {left}\\n".encode())  # one write
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="lists threads through /proc")
def test_leaving_the_group_stops_the_gloo_threads(tmp_path):
    # A gloo thread alive while the interpreter finalizes can abort the rank when it releases a
    # tensor (it waits for the GIL: "terminate called without an active exception").
    script = tmp_path / "leave.py"
    script.write_text(GLOO_THREADS_LEFT)
    result = torchrun([str(script)])
    assert result.returncode == 0, _worker_lines(result.stderr)
    said = sorted(line for line in result.stdout.splitlines() if line.startswith("rank"))
    assert said == [
        "rank 0: gloo threads left []",
        "rank 1: gloo threads left []",
    ], result.stdout


def test_a_meta_batch_smaller_than_the_ranks_is_one_line_on_rank_0(tmp_path):
    result = torchrun([*SINUSOID, "--meta-batch", "1", "--run-dir", str(tmp_path / "run")])
    assert result.returncode != 0
    assert result.stderr.count("error: --meta-batch 1 is smaller than the 2 ranks") == 1
    assert "Traceback" not in result.stderr.split("error:")[0]


def test_a_killed_rank_is_restarted_and_the_run_finishes(tmp_path):
    run = tmp_path / "run"
    launch = ["--standalone", "--nproc-per-node", "2", "--max-restarts", "1"]
    command = [sys.executable, "-m", "torch.distributed.run", *launch, *SINUSOID]
    command += ["--iterations", "150", "--run-dir", str(run)]
    process = start(command)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and _iteration(run) < 3:
            time.sleep(0.1)
        workers = _children(process.pid)
        assert len(workers) == 2, workers
        os.kill(workers[-1], signal.SIGKILL)
    finally:
        result = finish(process, timeout=240)
    assert result.returncode == 0, _worker_lines(result.stderr)
    err = result.stderr
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 150
    assert _restarted(run) and "lost its peers" in err
    assert not _children(process.pid)


def test_two_nodes_on_one_machine_train_as_one_process(tmp_path):
    args = [*SINUSOID, "--iterations", "3"]
    assert single([*args, "--run-dir", str(tmp_path / "one")]).returncode == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nodes = []
    for node in (0, 1):
        launch = ["--nnodes", "2", "--node-rank", str(node), "--nproc-per-node", "1"]
        launch += ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}"]
        launch += ["--rdzv-id", "test-nodes"]
        command = [sys.executable, "-m", "torch.distributed.run", *launch, *args]
        command += ["--run-dir", str(tmp_path / "two")]
        nodes.append(start(command))
    for node in nodes:
        assert finish(node).returncode == 0
    assert_same_learner(tmp_path / "one", tmp_path / "two")


def _iteration(run):
    """The run's checkpointed iteration, or -1 while it has none."""
    try:
        return load_checkpoint(run / "checkpoint.pt")["iteration"]
    except Exception:  # not written yet, or being replaced
        return -1


def _restarted(run):
    history = run / "history.toml"
    return history.exists() and history.read_text().count('event = "resume"') >= 1


def _worker_lines(stderr):
    """The first lines of stderr (an abort's cause, say; torchrun's report comes last), no bars."""
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.strip()]
    kept = [line for line in lines if "it/s" not in line and "s/it" not in line]
    return "\n".join(kept[:60])


def _children(pid):
    result = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in result.stdout.split()]


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not torch.distributed.is_available(), reason="torch.distributed is not available"
    ),
]
