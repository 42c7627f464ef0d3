"""A run folder keeps its work: events once per step across resumes, one process at a time, and
a failed write is one line that leaves the last good files and nothing else."""

import errno
import io
import os
import pathlib
import resource
import signal
import subprocess
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from maml.run.checkpoint import load_checkpoint
from maml.run.folder import EventWriter, RunLock, WriteError, remove_if_unused, write_atomic
from maml_rl import train as rl_train
from maml_sl import train as sl_train
from maml_sl.trainer import SupervisedTrainer
from tests.conftest import cli, finish, start_training
from tests.test_runs import NAVIGATION, SINUSOID, SLOW

FAST = [*SINUSOID[2:], "--log-every", "1", "--val-every", "2"]


def steps(run, tag):
    accumulator = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    if tag.startswith("val/held"):
        return [image.step for image in accumulator.Images(tag)]
    return [scalar.step for scalar in accumulator.Scalars(tag)]


def test_every_step_is_logged_once_across_stops_and_resumes(tmp_path):
    run = tmp_path / "run"
    assert cli(sl_train.main, [*FAST, "--iterations", "3", "--run-dir", str(run)]) == 0
    assert cli(sl_train.main, ["--resume", str(run), "--iterations", "5"]) == 0
    assert steps(run, "losses/meta_loss") == [1, 2, 3, 4, 5]
    assert steps(run, "val/query_loss_after_1_steps") == [2, 3, 4, 5]
    assert steps(run, "val/held_out_tasks") == [0, 3, 5]


def test_steps_logged_after_the_last_checkpoint_of_a_failed_run_are_replaced(tmp_path, monkeypatch):

    real = SupervisedTrainer.iteration

    def fails_after_logging_4(self, iteration, writer, clock):
        postfix = real(self, iteration, writer, clock)
        if iteration == 3:
            raise OSError(errno.EIO, "the machine went away")
        return postfix

    run = tmp_path / "run"
    args = [*FAST, "--checkpoint-every", "2", "--iterations", "6", "--run-dir", str(run)]
    monkeypatch.setattr(SupervisedTrainer, "iteration", fails_after_logging_4)
    assert cli(sl_train.main, args) == 1
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 2  # steps 3 and 4 logged since
    monkeypatch.setattr(SupervisedTrainer, "iteration", real)
    assert cli(sl_train.main, ["--resume", str(run)]) == 0
    assert steps(run, "losses/meta_loss") == [1, 2, 3, 4, 5, 6]


@pytest.mark.slow
def test_a_second_process_on_a_run_folder_is_refused_until_the_first_is_gone(tmp_path, capsys):
    run = tmp_path / "run"
    process, _ = start_training(SLOW, run)
    try:
        assert cli(sl_train.main, ["--resume", str(run), "--iterations", "2"]) == 2
        err = capsys.readouterr().err
        assert f"{run} is in use by process {process.pid}" in err
        assert err.count("\n") == 1
    finally:
        process.send_signal(signal.SIGKILL)
        finish(process)
    # The OS released the lock with the process: the run resumes at once.
    assert cli(sl_train.main, ["--resume", str(run), "--iterations", "1"]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 1


class FailingFile(io.BufferedIOBase):
    """A file whose writes fail, as on a full disk, after ``room`` bytes."""

    def __init__(self, handle, room):
        self.handle, self.room = handle, room

    def write(self, data):
        data = bytes(data)
        if len(data) > self.room:
            self.handle.write(data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.handle.write(data)

    def flush(self):
        self.handle.flush()

    def fileno(self):
        return self.handle.fileno()

    def close(self):
        self.handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.fixture
def full_disk(monkeypatch):
    """``full_disk(name, after=n)``: writes to files named ``name`` fail from the ``n``-th file
    opened on (0: the first), half-way through."""
    real = pathlib.Path.open

    def fail(name, after=0):
        opened = []

        def open_(path, mode="r", *args, **kwargs):
            handle = real(path, mode, *args, **kwargs)
            if path.name == name and "w" in mode:
                opened.append(path)
                if len(opened) > after:
                    return FailingFile(handle, 100)
            return handle

        monkeypatch.setattr(pathlib.Path, "open", open_)

    return fail


def assert_one_line_and_no_leftovers(capsys, run, says):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and says in lines[0], err
    assert "Traceback" not in err
    assert not list(run.glob("*.tmp"))
    return lines[0]


def test_a_checkpoint_that_cannot_be_written_keeps_the_last_good_one(tmp_path, full_disk, capsys):
    run = tmp_path / "run"
    full_disk("checkpoint.pt.tmp", after=2)  # the initial state and iteration 1 are written
    args = [*FAST, "--checkpoint-every", "1", "--iterations", "4", "--run-dir", str(run)]
    assert cli(sl_train.main, args) == 1
    line = assert_one_line_and_no_leftovers(capsys, run, f"could not write {run}/checkpoint.pt")
    assert "No space left on device" in line and "(iteration 1) is kept" in line
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 1


def test_a_run_that_cannot_write_its_first_checkpoint_says_so(tmp_path, full_disk, capsys):
    run = tmp_path / "run"
    full_disk("checkpoint.pt.tmp")
    assert cli(sl_train.main, [*FAST, "--iterations", "2", "--run-dir", str(run)]) == 1
    line = assert_one_line_and_no_leftovers(capsys, run, "could not write")
    assert line.endswith("; none was written")


@pytest.mark.parametrize("name", ["config.toml.tmp", "history.toml.tmp"])
def test_settings_that_cannot_be_written_stop_a_resume_and_keep_the_files(
    tmp_path, full_disk, capsys, name
):
    run = tmp_path / "run"
    assert cli(sl_train.main, [*FAST, "--iterations", "1", "--run-dir", str(run)]) == 0
    before = {path.name: path.read_bytes() for path in run.glob("*.toml")}
    capsys.readouterr()
    full_disk(name)
    assert cli(sl_train.main, ["--resume", str(run), "--iterations", "2"]) == 1
    assert_one_line_and_no_leftovers(capsys, run, f"could not write {run}/{name[:-4]}")
    assert (run / name[:-4]).read_bytes() == before[name[:-4]]  # whole, as it was
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 1


def test_events_that_cannot_be_written_stop_the_run_in_one_line(tmp_path, monkeypatch, capsys):
    real = pathlib.Path.open

    def open_(path, mode="r", *args, **kwargs):
        handle = real(path, mode, *args, **kwargs)
        if path.name.startswith("events.out.tfevents") and "w" in mode:
            return FailingFile(handle, 300)  # the file's header and a few scalars
        return handle

    run = tmp_path / "run"
    assert cli(rl_train.main, [*NAVIGATION, "--iterations", "1", "--run-dir", str(run)]) == 0
    monkeypatch.setattr(pathlib.Path, "open", open_)
    capsys.readouterr()
    args = ["--resume", str(run), "--iterations", "3", "--checkpoint-every", "1"]
    assert cli(rl_train.main, args) == 1
    line = assert_one_line_and_no_leftovers(capsys, run, f"could not write {run}/events.out")
    assert "No space left on device" in line
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] >= 1


@pytest.mark.slow
def test_a_file_size_limit_is_one_line_and_the_run_resumes_after(tmp_path):
    # A real failing write (EFBIG past RLIMIT_FSIZE) in a process of its own.
    run = tmp_path / "run"

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    command = [sys.executable, *SINUSOID, "--hidden", "80", "--iterations", "3"]
    result = subprocess.run(
        [*command, "--run-dir", str(run)], capture_output=True, text=True, preexec_fn=limit
    )
    assert result.returncode == 1
    assert f"error: could not write {run}/checkpoint.pt: File too large" in result.stderr
    assert "Traceback" not in result.stderr and not list(run.glob("*.tmp"))
    resumed = subprocess.run(
        [sys.executable, "-m", "maml_sl.train", "--resume", str(run)],
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 3


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary_one(tmp_path, monkeypatch):
    path = tmp_path / "config.toml"
    write_atomic(path, "old = 1\n")

    def interrupted(handle):
        raise KeyboardInterrupt  # a second Ctrl-C in the middle of the write

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, "new = 2\n")
    assert path.read_text() == "old = 1\n" and not list(tmp_path.glob("*.tmp"))


def test_an_event_file_whose_first_write_fails_is_not_left_behind(tmp_path, monkeypatch):
    real = pathlib.Path.open

    def open_(path, mode="r", *args, **kwargs):
        handle = real(path, mode, *args, **kwargs)
        return FailingFile(handle, 0) if path.name.startswith("events.out") else handle

    monkeypatch.setattr(pathlib.Path, "open", open_)
    with pytest.raises(WriteError, match="No space left on device"):
        EventWriter(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_start_that_failed_leaves_no_folder_but_a_held_lock_stays(tmp_path):
    unused, held = tmp_path / "unused", tmp_path / "held"
    for folder in (unused, held):
        folder.mkdir()
        with RunLock(folder):
            pass
    remove_if_unused(unused)
    assert not unused.exists()
    with RunLock(held):
        remove_if_unused(held)  # another process's run that has only started
        assert (held / "lock").exists()


def test_run_cli_turns_a_file_system_error_into_one_line(capsys):
    def main(argv):
        raise OSError(errno.EROFS, "Read-only file system", "runs/x")

    assert cli(main, []) == 1
    assert capsys.readouterr().err == "error: [Errno 30] Read-only file system: 'runs/x'\n"
