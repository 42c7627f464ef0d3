"""Writing into a run folder without losing work: atomic files, the folder's lock, and
TensorBoard events written in the caller's thread.

Every failure to write is a :class:`WriteError` naming the file and the cause (one line, no
traceback); a file replaced atomically is either the old one or the new one, and no temporary
file is left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import re
import socket
import time
from pathlib import Path
from types import TracebackType

from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.summary.writer.record_writer import RecordWriter
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.writer import FileWriter

from maml.run.errors import TrainingError, UsageError

LOCK = "lock"
_EVENT_FILES = itertools.count()


class WriteError(TrainingError):
    """A file of the run could not be written (a full disk, say)."""


def _cause(error: OSError) -> str:
    return error.strerror or str(error) or type(error).__name__


def write_atomic(path: str | Path, data: bytes | memoryview | str) -> None:
    """Replace ``path`` by ``data`` (str as UTF-8) in one step: a reader, or a crash at any
    moment, sees the old file or the new one; a failed write leaves the old file and no other."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        with tmp.open("wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _sync_folder(path.parent)
    except BaseException as error:  # a second Ctrl-C mid-write too: no .tmp stays behind
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise WriteError(f"could not write {path}: {_cause(error)}") from None
        raise


def append_atomic(path: str | Path, text: str) -> None:
    """Add ``text`` to the end of ``path`` (created if missing) with :func:`write_atomic`."""
    path = Path(path)
    try:
        before = path.read_text(encoding="utf-8") if path.exists() else ""
    except OSError as error:
        raise WriteError(f"could not read {path}: {_cause(error)}") from None
    write_atomic(path, before + text)


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (the folder's entry, not only the file's data)."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def folder_name(name: str) -> str:
    """``name`` (a task, or a family such as ``mytasks:Pendulum`` or ``ns/Env-v0``) as one
    folder name: characters other than letters, digits, ``.``, ``_`` and ``-`` become ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)


def new_run_dir(name: str, root: str | Path = "runs") -> Path:
    """Create ``root/<name>-<timestamp>`` (with a suffix if that exists already)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{folder_name(name)}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path


class RunLock:
    """One process per run folder: an exclusive lock on ``<run>/lock`` for the life of a run.

    The OS releases it when the process ends, however it ends, so a killed run can be resumed at
    once; a second process is refused with a :class:`UsageError` naming the one that holds it.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK
        self._handle: int | None = None

    def __enter__(self) -> RunLock:
        try:
            handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise WriteError(f"could not create {self.path}: {_cause(error)}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 200, 0).decode("utf-8", "replace").strip() or "another"
            os.close(handle)
            raise UsageError(
                f"{self.run_dir} is in use by {holder}: one process per run folder; wait for it "
                f"to finish or stop it, then --resume {self.run_dir}"
            ) from None
        holder = f"process {os.getpid()} on {socket.gethostname()}"
        try:
            os.ftruncate(handle, 0)
            os.pwrite(handle, f"{holder} (since {time.strftime('%Y-%m-%d %H:%M:%S')})".encode(), 0)
        except OSError:
            pass  # the lock holds without the note of who holds it
        self._handle = handle
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            os.close(self._handle)  # closing the last descriptor releases the lock
            self._handle = None


def remove_if_unused(run_dir: str | Path) -> None:
    """Remove ``run_dir`` if it holds nothing, or nothing but a lock no process holds (a start
    that failed before writing anything); leave it otherwise, and on any error."""
    run_dir = Path(run_dir)
    with contextlib.suppress(OSError):
        names = [entry.name for entry in run_dir.iterdir()]
        if names == [LOCK]:
            handle = os.open(run_dir / LOCK, os.O_RDWR)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # not while another holds it
                (run_dir / LOCK).unlink()
            finally:
                os.close(handle)
        elif names:
            return
        run_dir.rmdir()


class _EventFile:
    """An event file written in the caller's thread (TensorBoard's own writer writes in a
    thread of its own, whose failure prints a traceback and surfaces later, elsewhere)."""

    FLUSH_SECONDS = 10.0

    def __init__(self, log_dir: str, suffix: str = "") -> None:
        self.log_dir = log_dir
        name = (
            f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
            f"{os.getpid()}.{next(_EVENT_FILES)}{suffix}"
        )
        self.path = Path(log_dir) / name
        self._handle = self._attempt(lambda: self.path.open("wb"))
        self._records = RecordWriter(self._handle)
        self._flushed = time.monotonic()
        try:
            self.add_event(Event(wall_time=time.time(), file_version="brain.Event:2"))
            self.flush()
        except WriteError:  # not even the header: no empty events file stays
            self.close()
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise

    def _attempt(self, write):
        try:
            return write()
        except OSError as error:
            raise WriteError(f"could not write {self.path}: {_cause(error)}") from None

    def get_logdir(self) -> str:
        return self.log_dir

    def add_event(self, event: Event) -> None:
        self._attempt(lambda: self._records.write(event.SerializeToString()))
        if time.monotonic() - self._flushed > self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self._attempt(self._handle.flush)
        self._flushed = time.monotonic()

    def close(self) -> None:
        if self._handle.closed:
            return
        try:
            self.flush()
        finally:
            with contextlib.suppress(OSError):  # what did not flush is reported above
                self._handle.close()


class _FileWriter(FileWriter):
    def __init__(self, log_dir, max_queue=10, flush_secs=120, filename_suffix="") -> None:
        self.event_writer = _EventFile(str(log_dir), filename_suffix)


class EventWriter(SummaryWriter):
    """TensorBoard's ``SummaryWriter`` whose writes happen at the call: a failure is a
    :class:`WriteError` naming the event file, raised by the call that met it.

    ``purge_step`` (as TensorBoard's) hides the events that earlier writers logged at that
    step and later: a resumed run logs them again.
    """

    def close(self) -> None:
        """Flush and close the event file; it is closed even when the flush fails."""
        writers, self.file_writer, self.all_writers = self.all_writers, None, None
        for writer in (writers or {}).values():
            writer.close()  # ours flushes first

    def _get_file_writer(self) -> FileWriter:
        if self.all_writers is None or self.file_writer is None:
            self.file_writer = _FileWriter(self.log_dir, filename_suffix=self.filename_suffix)
            self.all_writers = {self.file_writer.get_logdir(): self.file_writer}
            if self.purge_step is not None:
                start = SessionLog(status=SessionLog.START)
                self.file_writer.add_event(Event(step=self.purge_step, session_log=start))
                self.purge_step = None
        return self.file_writer
