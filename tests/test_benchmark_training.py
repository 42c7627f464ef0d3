"""A benchmark's training child stops with it: a signal to the benchmark reaches the training."""

import signal
import subprocess
import sys
import textwrap

import pytest

# A stand-in training: says it started, then on SIGTERM or SIGINT writes which signal it got and
# exits with 128 + its number, as a training stopped after its iteration does.
CHILD = textwrap.dedent(
    """
    import signal, sys, time
    def stop(signum, frame):
        open(sys.argv[1], "w").write(str(signum))
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("started", flush=True)
    time.sleep(60)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_benchmark_stops_its_training_child(tmp_path, sig):
    got = tmp_path / "got"
    parent = (
        "import sys; from benchmarks.training import run_training; "
        f"run_training([sys.executable, '-c', {CHILD!r}, {str(got)!r}])"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", parent], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "started"
    process.send_signal(sig)
    out, err = process.communicate(timeout=30)
    assert got.read_text() == str(int(sig))  # once, the child's own handler ran
    assert process.returncode == 128 + sig
    assert "training stopped with status" in err
