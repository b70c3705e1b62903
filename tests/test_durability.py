"""Writes that survive a power cut, a lock that fails cleanly, signals taken without a gap.

* An atomic write fsyncs the folder after its rename: until then the new name lives only
  in memory, and a power cut could bring the old file back after kgpt said it saved.
* ``writer_lock`` on a full disk (its lock file cannot be created or written) is one
  :class:`KgptError` line, through the CLI too, with no descriptor or lock file left behind.
* The trainer records the handler there was before installing its own, so a signal that
  arrives the instant the handler is installed finds where to hand the next one.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
from pathlib import Path

import pytest

from conftest import FOUR_BIOS, cli_pretrain, one_line_error
from kgpt.cli import main
from kgpt.io import atomic_write_bytes, writer_lock
from kgpt.training import trainer


def _is_dir(fd: int) -> bool:
    return stat.S_ISDIR(os.fstat(fd).st_mode)


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd")) if Path("/proc/self/fd").is_dir() else set()


def test_a_write_flushes_its_folder_after_the_rename(tmp_path, monkeypatch):
    target = tmp_path / "model.params"
    target.write_bytes(b"old")
    synced, real = [], os.fsync

    def spy(fd: int) -> None:
        if _is_dir(fd):  # what the folder held on disk when it was flushed
            synced.append((os.fstat(fd).st_ino, target.read_bytes()))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    atomic_write_bytes(target, b"new")
    assert synced == [(tmp_path.stat().st_ino, b"new")]


@pytest.mark.parametrize("code, fails", [(errno.EINVAL, False), (errno.EIO, True)])
def test_a_folder_that_cannot_be_flushed(tmp_path, monkeypatch, code, fails):
    """A file system that cannot fsync folders (EINVAL) has nothing to flush; a disk that
    fails the flush (EIO) is one line, saying the file was written but may not last."""
    real = os.fsync

    def fsync(fd: int) -> None:
        if _is_dir(fd):
            raise OSError(code, os.strerror(code))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    target, before = tmp_path / "preds.txt", _open_fds()
    if fails:
        assert "cannot flush its folder" in one_line_error(atomic_write_bytes, target, b"new")
    else:
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and _open_fds() == before


def _full_disk_for(monkeypatch, lock: Path, call: str) -> None:
    """``os.open`` (creating) or ``os.write`` of ``lock`` reports a full disk; every other call works."""
    real = getattr(os, call)

    def is_lock(target) -> bool:
        if call == "open":
            return Path(target) == lock
        return lock.exists() and os.fstat(target).st_ino == lock.stat().st_ino

    def full(target, *a, **k):
        if is_lock(target):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(target, *a, **k)

    monkeypatch.setattr(os, call, full)


@pytest.mark.parametrize("call", ["open", "write"])
def test_the_lock_on_a_full_disk_is_one_line_and_leaves_nothing_open(tmp_path, monkeypatch, call):
    out = tmp_path / "model.params"
    lock = Path(f"{out}.lock")
    _full_disk_for(monkeypatch, lock, call)
    before = _open_fds()

    def take():
        with writer_lock(out, "--writing_params_path"):
            pytest.fail("the lock was taken on a full disk")

    message = one_line_error(take)
    assert "cannot lock" in message and "No space left on device" in message and "--writing_params_path" in message
    assert _open_fds() == before and not lock.exists()
    monkeypatch.undo()  # room again: the next run takes the lock
    with writer_lock(out, "--writing_params_path"):
        assert lock.exists()
    assert not lock.exists()


def test_pretrain_with_no_room_for_its_lock_exits_with_one_line(tmp_path, monkeypatch, capsys):
    corpus, out = tmp_path / "wiki.txt", tmp_path / "model.params"
    corpus.write_text(FOUR_BIOS, encoding="utf-8")
    _full_disk_for(monkeypatch, Path(f"{out}.lock"), "write")
    capsys.readouterr()
    assert main(cli_pretrain(corpus, out, 1)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kgpt pretrain: error: cannot lock") and "Traceback" not in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wiki.txt"]


def test_a_signal_the_instant_the_trainer_takes_it_finds_the_previous_handler(monkeypatch):
    """Each stop signal is delivered the moment the trainer's handler is installed: the
    handler must already know the handler there was before, to hand the next signal to."""
    real, delivered = signal.signal, []
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def install_then_deliver(signum, handler):
        old = real(signum, handler)
        if getattr(handler, "__qualname__", "").startswith(trainer.deferred_signals.__name__):
            delivered.append(signum)
            handler(signum, None)
        return old

    monkeypatch.setattr(signal, "signal", install_then_deliver)
    with trainer.deferred_signals() as stop:
        assert delivered == [signal.SIGINT, signal.SIGTERM]
        assert stop["signal"] == signal.SIGINT  # the first one stops the run
        assert {s: signal.getsignal(s) for s in before} == before  # a second goes to the previous handler
    assert {s: signal.getsignal(s) for s in before} == before

