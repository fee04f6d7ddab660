"""One worker per SQLite database: an exclusive, non-blocking `flock` on `<state path>.worker.lock`.

SQLite has one writer, and per-campaign serialization is an in-process lock: a second worker on the same
file would break the exactly-once argument. The kernel drops a `flock` when the last descriptor of the
open file closes, which includes the process dying by any means (SIGKILL, OOM): a killed worker never
leaves a stale lock, and the file itself is never deleted (deleting lock files races).

The file holds the holder's pid (for the refusal message and the health check) and its modification time
is the worker's heartbeat: the worker touches it every sweep (`beat`), `campaign-guard healthcheck`
checks it is fresh (`check_alive`). Reading the file never takes the lock, so a health check can never
make a starting worker refuse to start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Final, Self

from bot.errors import ConfigError

__all__ = ["LOCK_SUFFIX", "WorkerLock", "check_alive", "lock_path"]

LOCK_SUFFIX: Final = ".worker.lock"


def lock_path(state_path: Path) -> Path:
    """`<state path>.worker.lock`, beside the database."""
    return state_path.with_name(state_path.name + LOCK_SUFFIX)


def _holder(fd: int) -> int | None:
    """The pid written in the lock file, if any (empty between a holder's exit and the next start)."""
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode("ascii").strip())
    return None


class WorkerLock:
    """Held by the running worker from `acquire` to `release` (or its death)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, state_path: Path) -> WorkerLock:
        """Take the lock of the database at `state_path`, or raise ConfigError (one line) naming the holder."""
        path = lock_path(state_path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise ConfigError(f"cannot create the worker lock {path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            raise ConfigError(
                f"another worker already uses {state_path} (pid {pid if pid is not None else 'unknown'}); "
                "one worker per SQLite database — use PostgreSQL for several"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise ConfigError(f"cannot lock {path}: {exc.strerror}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)    # also the first heartbeat (mtime)
        return cls(path, fd)

    def beat(self) -> None:
        """Record that the worker is alive (the file's mtime, read by `check_alive`)."""
        if self._fd is not None:
            os.utime(self._fd)

    def release(self) -> None:
        """Clear the pid (a stopped worker is not alive) and unlock. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)                                  # closing the descriptor releases the flock

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def check_alive(state_path: Path, *, max_age: float, now: float | None = None) -> str | None:
    """None when a worker holds the database at `state_path` and beat within `max_age` seconds; else why not.
    Takes no lock."""
    path = lock_path(state_path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return f"no worker has run on {state_path} (no {path.name})"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    try:
        pid = _holder(fd)
        age = (time.time() if now is None else now) - os.fstat(fd).st_mtime
    finally:
        os.close(fd)
    if pid is None:
        return f"no worker running on {state_path} (the last one stopped)"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"the worker (pid {pid}) on {state_path} is gone"
    except PermissionError:
        pass                                          # alive, under another user
    if age > max_age:
        return f"the worker (pid {pid}) has not swept for {age:.0f} s (more than {max_age:g} s): stuck"
    return None
