"""Fetching and verifying data: right files in, wrong files refused, nothing half-done.

Downloads go to a local HTTP server serving a temporary folder of small fake files; the
real data is only ever hashed, by the one test that finds it beside the repository.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kgpt.data.fetch import KNOWN_SHA256, check, fetch, verify
from kgpt.data.synthetic import FILE_NAMES
from kgpt.errors import KgptError

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "birthplaces"
FAKE = {name: f"fake {name}, line one\nline two\n".encode() for name in KNOWN_SHA256}
EXPECTED = {name: hashlib.sha256(data).hexdigest() for name, data in FAKE.items()}


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Keep test output clean."""


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy from the environment must not intercept the local server."""
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


@pytest.fixture
def www(tmp_path: Path) -> Path:
    """The folder the server serves, and nothing else."""
    root = tmp_path / "www"
    root.mkdir()
    return root


@pytest.fixture
def server(www: Path) -> Iterator[str]:
    """Base URL (ending in '/') of an HTTP server on 127.0.0.1 serving ``www``."""
    handler = functools.partial(QuietHandler, directory=str(www))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # A short poll interval: shutdown() waits for one, 0.5 s by default, every test.
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """The folder that holds ``dest``: temporary files would show up here."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return path


def make_tar(path: Path, files: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes (None for folders)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
        for p in sorted(folder.rglob("*"))
    }


def in_folder(folder: str, files: dict[str, bytes]) -> dict[str, bytes]:
    return {f"{folder}/{name}": data for name, data in files.items()}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "archive, build",
    [
        ("data.zip", lambda p, f: make_zip(p, in_folder("birthplaces", f))),
        ("data.tar.gz", lambda p, f: make_tar(p, in_folder("birthplaces", f))),
        ("data.tgz", lambda p, f: make_tar(p, f)),
        ("data.tar", lambda p, f: make_tar(p, in_folder("./birthplaces", f), "w")),
        ("flat.zip", make_zip),
    ],
)
def test_fetch_an_archive(www: Path, server: str, out: Path, archive: str, build) -> None:
    build(www / archive, FAKE)
    paths = fetch(server + archive, out / "data", expected=EXPECTED)
    assert paths == [(out / "data" / name).resolve() for name in EXPECTED]
    assert {p.name: p.read_bytes() for p in paths} == FAKE
    assert sorted(p.name for p in out.iterdir()) == ["data"]  # no temporary leftovers


def test_fetch_from_a_folder_url(www: Path, server: str, out: Path) -> None:
    (www / "files").mkdir()
    for name, data in FAKE.items():
        (www / "files" / name).write_bytes(data)
    paths = fetch(server + "files/", out / "data", expected=EXPECTED)
    assert {p.name: p.read_bytes() for p in paths} == FAKE


def test_fetch_from_a_file_url(tmp_path: Path, out: Path) -> None:
    archive = make_tar(tmp_path / "local.tar.gz", FAKE)
    fetch(archive.as_uri(), out / "data", expected=EXPECTED)
    assert verify(out / "data", expected=EXPECTED)


def test_fetch_replaces_old_files_and_keeps_others(www: Path, server: str, out: Path) -> None:
    dest = out / "data"
    dest.mkdir()
    (dest / "birth_dev.tsv").write_bytes(b"stale\n")
    (dest / "notes.txt").write_bytes(b"mine\n")
    make_zip(www / "data.zip", FAKE)
    fetch(server + "data.zip", dest, expected=EXPECTED)
    assert (dest / "birth_dev.tsv").read_bytes() == FAKE["birth_dev.tsv"]
    assert (dest / "notes.txt").read_bytes() == b"mine\n"


def refused(url: str, dest: Path, match: str) -> str:
    """Fetch must fail with a one-line KgptError and leave everything beside dest as it was."""
    before = snapshot(dest.parent)
    with pytest.raises(KgptError, match=match) as error:
        fetch(url, dest, expected=EXPECTED)
    assert "\n" not in str(error.value)
    assert snapshot(dest.parent) == before
    return str(error.value)


def test_a_mismatching_file_is_refused_and_dest_untouched(www: Path, server: str, out: Path) -> None:
    dest = out / "data"
    dest.mkdir()
    (dest / "birth_dev.tsv").write_bytes(b"the old dev file\n")
    make_zip(www / "data.zip", {**FAKE, "birth_dev.tsv": b"tampered\n"})
    message = refused(server + "data.zip", dest, "birth_dev.tsv differs from the known file")
    assert EXPECTED["birth_dev.tsv"][:12] in message and "left unchanged" in message


def test_a_missing_file_in_the_archive_is_refused(www: Path, server: str, out: Path) -> None:
    files = {name: data for name, data in FAKE.items() if name != "birth_test_inputs.tsv"}
    make_tar(www / "data.tar.gz", files)
    refused(server + "data.tar.gz", out / "data", "has no birth_test_inputs.tsv")
    assert not (out / "data").exists()


def test_a_file_missing_from_a_folder_url_is_refused(www: Path, server: str, out: Path) -> None:
    (www / "files").mkdir()
    for name, data in FAKE.items():
        if name != "wiki.txt":
            (www / "files" / name).write_bytes(data)
    refused(server + "files/", out / "data", r"files/wiki\.txt: HTTP 404")


def test_http_404(server: str, out: Path) -> None:
    refused(server + "nothing-here.zip", out / "data", "HTTP 404")


def test_unreachable_server(out: Path) -> None:
    refused(f"http://127.0.0.1:{closed_port()}/data.zip", out / "data", "cannot fetch .*refused")


@pytest.mark.parametrize(
    "archive, build",
    [
        ("evil.tar.gz", lambda p: make_tar(p, {**FAKE, "../evil.txt": b"escaped\n"})),
        ("evil.zip", lambda p: make_zip(p, {**FAKE, "/tmp/evil.txt": b"escaped\n"})),
        ("evil2.zip", lambda p: make_zip(p, in_folder("x/../..", FAKE))),
    ],
)
def test_unsafe_member_paths_are_refused(www: Path, server: str, out: Path, archive: str, build) -> None:
    build(www / archive)
    refused(server + archive, out / "data", "unsafe path")
    assert not list(out.parent.rglob("evil.txt"))


def test_a_link_member_is_refused(www: Path, server: str, out: Path) -> None:
    with tarfile.open(www / "link.tar", "w") as tf:
        for name, data in FAKE.items():
            if name == "wiki.txt":
                info = tarfile.TarInfo(name)
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tf.addfile(info)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    refused(server + "link.tar", out / "data", "wiki.txt is a link")


def test_not_an_archive(www: Path, server: str, out: Path) -> None:
    (www / "page.html").write_text("<html>moved</html>\n")
    refused(server + "page.html", out / "data", "not a zip or tar archive")


def test_a_damaged_archive(www: Path, server: str, out: Path, tmp_path: Path) -> None:
    big = {**FAKE, "wiki.txt": hashlib.sha256(b"x").digest() * 4096}
    whole = make_tar(tmp_path / "whole.tar.gz", big).read_bytes()
    (www / "cut.tar.gz").write_bytes(whole[: len(whole) // 2])
    refused(server + "cut.tar.gz", out / "data", "damaged")


@pytest.mark.parametrize("url", ["ftp://example.org/data.zip", "data.zip", "/tmp/data.zip"])
def test_only_http_https_and_file_urls(url: str, out: Path) -> None:
    refused(url, out / "data", "expected an http, https or file URL")


def test_dest_must_be_a_folder(www: Path, server: str, out: Path) -> None:
    (out / "data").write_text("a file\n")
    make_zip(www / "data.zip", FAKE)
    refused(server + "data.zip", out / "data", "it is a file, not a folder")


def write_fake(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    for name, data in FAKE.items():
        (folder / name).write_bytes(data)
    return folder


def test_verify_a_good_folder(tmp_path: Path) -> None:
    folder = write_fake(tmp_path / "data")
    assert verify(folder, expected=EXPECTED) == [folder / name for name in EXPECTED]
    assert all(c.ok for c in check(folder, expected=EXPECTED))


def test_verify_names_a_modified_file(tmp_path: Path) -> None:
    folder = write_fake(tmp_path / "data")
    (folder / "birth_dev.tsv").write_bytes(b"edited\n")
    with pytest.raises(KgptError, match=r"birth_dev\.tsv differs from the known file") as error:
        verify(folder, expected=EXPECTED)
    message = str(error.value)
    assert "\n" not in message and str(folder) in message
    assert hashlib.sha256(b"edited\n").hexdigest()[:12] in message
    assert [c.name for c in check(folder, expected=EXPECTED) if not c.ok] == ["birth_dev.tsv"]


def test_verify_a_folder_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(KgptError, match="does not exist"):
        verify(tmp_path / "nowhere", expected=EXPECTED)


def test_verify_names_a_missing_file(tmp_path: Path) -> None:
    folder = write_fake(tmp_path / "data")
    (folder / "wiki.txt").unlink()
    with pytest.raises(KgptError, match=r"wiki\.txt is missing"):
        verify(folder, expected=EXPECTED)
    assert {c.name: c.actual for c in check(folder, expected=EXPECTED)}["wiki.txt"] is None


def test_known_sums_cover_the_real_file_names() -> None:
    assert set(KNOWN_SHA256) == set(FILE_NAMES.values())
    assert all(re.fullmatch("[0-9a-f]{64}", d) for d in KNOWN_SHA256.values())


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real data not found at {REAL_DATA}")
def test_the_real_data_matches_the_known_sums() -> None:
    assert [p.name for p in verify(REAL_DATA)] == list(KNOWN_SHA256)
