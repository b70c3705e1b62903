"""Output files: written whole or not at all, with the permissions a plain write would give."""

from __future__ import annotations

import os
import stat
import sys

import pytest
from conftest import one_line_error

from kgpt.io import atomic_write_bytes, check_output

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_files_get_the_umask_default_and_replaced_files_keep_their_mode(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "new.txt", b"a")
        assert mode(tmp_path / "new.txt") == 0o640  # not mkstemp's private 0600
        (tmp_path / "kept.txt").write_bytes(b"old")
        os.chmod(tmp_path / "kept.txt", 0o604)
        atomic_write_bytes(tmp_path / "kept.txt", b"new")
        assert mode(tmp_path / "kept.txt") == 0o604 and (tmp_path / "kept.txt").read_bytes() == b"new"
    finally:
        os.umask(old)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary files left


def test_an_output_that_is_an_input_is_refused(tmp_path):
    data = tmp_path / "wiki.txt"
    data.write_bytes(b"text")
    link = tmp_path / "link.txt"
    link.symlink_to(data)
    assert "is the input file" in one_line_error(check_output, link, "--outputs_path", [None, data])
    check_output(tmp_path / "other.txt", "--outputs_path", [data])  # a different file is fine
