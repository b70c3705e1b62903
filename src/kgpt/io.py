"""Files in and out: inputs read with a clear error, outputs checked early and written atomically.

Every problem a user can cause with a path (missing, a directory, unreadable, not
writable, an output that would overwrite an input) is one :class:`KgptError` line that
names the flag and the path. Outputs are written to a temporary file beside the target
and renamed over it, so a reader sees the old file or the new one, never half of one;
a run that writes a checkpoint holds a lock on it, so a second run cannot write it too.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

from kgpt.errors import KgptError

# Most file systems allow 255 bytes; the temporary file adds 14 and ".resume" 7.
_MAX_NAME_BYTES = 255 - 14 - 7


def read_input_bytes(path: str | Path, what: str, hint: str = "check the path") -> bytes:
    """The bytes of an input file that must exist, be a file and be non-empty.

    Every way a path can be wrong (missing, a directory, unreadable, a name the system
    refuses) is a :class:`KgptError` naming ``what`` and the path.
    """
    p = Path(path)
    check_input(p, what, hint)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise KgptError(f"{what} {p} cannot be read ({e.strerror or e}); {hint}") from None
    if not raw:
        raise KgptError(f"{what} {p} is empty (0 bytes); {hint}")
    return raw


def check_input(path: str | Path, what: str, hint: str = "check the path") -> None:
    """:func:`read_input_bytes`' checks of the path, for a file then read a piece at a time."""
    p = Path(path)
    try:
        if not p.exists():
            raise KgptError(f"{what} {p} does not exist; {hint}")
        if p.is_dir():
            raise KgptError(f"{what} {p} is a directory, not a file; {hint}")
        if p.is_file() and p.stat().st_size == 0:  # a pipe's size says nothing; its reader finds out
            raise KgptError(f"{what} {p} is empty (0 bytes); {hint}")
    except OSError as e:
        raise KgptError(f"{what} {p} cannot be read ({e.strerror or e}); {hint}") from None


def check_writable(path: str | Path, what: str = "output path") -> None:
    """Refuse, before any work is done, an output path that could not be written.

    Nothing is created: the path must not be a directory, and its nearest existing
    ancestor must be a folder this process may write in (missing folders below it are
    made when the file is written).
    """
    p = Path(path)
    try:
        if p.is_dir():
            raise KgptError(f"{what} {p} is a directory; give a file name inside it")
        folder = p.parent
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir():
            raise KgptError(f"{what} {p} cannot be created: {folder} is a file, not a folder; choose another path")
        if len(os.fsencode(p.name)) > _MAX_NAME_BYTES:
            raise KgptError(f"{what} {p} has a file name too long for the file system; choose a shorter one")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise KgptError(f"{what} {p} cannot be written: no permission to write in {folder}; choose another path")
    except OSError as e:
        raise KgptError(f"{what} {p} cannot be written ({e.strerror or e}); choose another path") from None


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old or the new file."""
    with atomic_writer(path) as f:
        f.write(data)


@contextmanager
def atomic_writer(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file whose bytes replace ``path`` only when the ``with`` block ends cleanly.

    The bytes go to a temporary file beside ``path``, are fsynced, then renamed over it,
    so output of any length can be streamed without ever leaving half a file: a failed
    write (a full disk, a lost mount), an exception or a signal in the block removes the
    temporary file and leaves the previous ``path``, if any, as it was. The folder is
    fsynced after the rename: until then the rename lives only in memory, and a power
    cut could bring back the old file (or none) after kgpt said it saved the new one.
    """
    path = Path(path)
    check_writable(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open() would:
        # the replaced file's, or the default permissions under the process umask.
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):  # disk full, permissions, …: the old file is still intact
            raise KgptError(f"cannot write {path} ({e.strerror or e}); the previous file, if any, is unchanged") from None
        raise
    _fsync_dir(path.parent, path)


# What fsync of a folder raises where the system cannot do it (Windows, some mounts):
# nothing to make durable there, so nothing to report.
_NO_DIR_FSYNC = {errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES, errno.EPERM, errno.EISDIR}


def _fsync_dir(folder: Path, written: Path) -> None:
    """Flush ``folder``'s entries to disk, so that a rename into it survives a power cut."""
    fd = None
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        os.fsync(fd)
    except OSError as e:
        if e.errno not in _NO_DIR_FSYNC:
            raise KgptError(f"wrote {written} but cannot flush its folder to disk ({e.strerror or e}); "
                            "it may not survive a power cut, check the disk") from None
    finally:
        if fd is not None:
            os.close(fd)


@contextmanager
def writer_lock(path: str | Path, flag: str) -> Iterator[None]:
    """Hold ``PATH.lock`` while this process writes ``path`` (and its ``.resume`` state).

    A second run given the same ``flag`` path refuses with one line naming the holder,
    instead of the two overwriting each other's checkpoints. The lock is the operating
    system's (``flock``), not the file's existence: the kernel drops it when its process
    dies however it dies, so a lock file left by a killed run never blocks the next one.
    """
    lock = Path(f"{path}.lock")
    check_writable(lock, flag)
    try:
        fd = _take_lock(lock, path, flag)
    except OSError as e:  # a full disk, a lost mount: nothing is left open or behind
        raise KgptError(f"cannot lock {path} for writing: {lock} cannot be written ({e.strerror or e}); "
                        f"free some space or give another {flag}") from None
    try:
        yield
    finally:
        if fd is not None:
            _release_lock(lock, fd)


def _take_lock(lock: Path, path: str | Path, flag: str) -> int | None:
    """The descriptor of ``lock``, held and naming this process; None where the file system
    has no locks. An OSError leaves nothing open and no lock file of ours behind."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            held = _try_lock(fd)
        except OSError as e:  # a file system without locks (some network mounts): go on unguarded
            print(f"kgpt: note: cannot lock {lock} ({e.strerror or e}); a second run on {path} would not be stopped",
                  file=sys.stderr)
            os.close(fd)
            return None
        if not held:
            try:
                holder = os.read(fd, 200).decode("utf-8", "replace").strip()
            except OSError:  # Windows refuses to read a locked range
                holder = ""
            os.close(fd)
            raise KgptError(f"{path} is being written by another kgpt run ({holder or 'starting'}); "
                            f"wait for it to end or give another {flag}")
        try:  # the holder before us may have removed the file between our open and our lock
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        except OSError:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"PID {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
    except OSError:  # no room for the holder's name: give the lock back whole
        _release_lock(lock, fd)
        raise
    return fd


def _release_lock(lock: Path, fd: int) -> None:
    """Remove ``lock`` while still holding it (so no one can lock the old file after this), then close it."""
    try:
        lock.unlink(missing_ok=True)
    except OSError:  # Windows does not remove an open file; the next run takes it over
        pass
    os.close(fd)


def _try_lock(fd: int) -> bool:
    """Take an exclusive lock on ``fd`` without waiting; False when another process holds it."""
    if fcntl is None:  # Windows: a byte-range lock, likewise released when its process exits
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except PermissionError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b) if Path(a).exists() and Path(b).exists() else Path(a).resolve() == Path(b).resolve()
    except (OSError, ValueError):
        return False


def check_output(path: str | Path, what: str, inputs: list[str | Path | None] = ()) -> None:
    """:func:`check_writable`, and refuse a path that is one of the run's input files."""
    check_writable(path, what)
    clash = next((i for i in inputs if i is not None and _same_file(path, i)), None)
    if clash is not None:
        raise KgptError(f"{what} {path} is the input file {clash}; writing there would destroy it, choose another path")
