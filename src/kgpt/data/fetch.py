"""Check the real data against known checksums, and download it safely.

kgpt may not ship the real files, so a user fetches them from wherever they are
published. Results are only comparable when everyone trains on the same bytes, so every
file is checked against :data:`KNOWN_SHA256` and a mismatch is refused, never warned
about.

:func:`fetch` downloads into a temporary folder beside the destination and moves files
in only after all of them verified, one ``os.replace`` each (atomic on one filesystem):
a failed download, a bad archive or a wrong file leaves the destination as it was.
"""

from __future__ import annotations

import hashlib
import http.client
import lzma
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from kgpt.errors import KgptError

KNOWN_SHA256: dict[str, str] = {
    "wiki.txt": "17e381468abd91b60be8acaff006c66b77532b4ea4c0ce097b0a686d2e8e8219",
    "birth_places_train.tsv": "02364dfca78e23d2583a19f03a2d8cddd90ee3e1a3795ddec7f0addadea30b0d",
    "birth_dev.tsv": "101a56073eba0db9aad5e2aaf1aa9bf8bdae966ae3aaed8fc8cda5edfa7856da",
    "birth_test_inputs.tsv": "5ccd3b2a1682e0daf90d59488aef8805ef21b9d35795cc3bdabdea79d293aa1f",
}
"""SHA-256 of the four files of the CS224N birthplace experiment."""

URL_SCHEMES = ("http", "https", "file")
_CHUNK = 1 << 20
# What reading a truncated or corrupt archive raises, from any of its compressions.
_DAMAGED = (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)


@dataclass(frozen=True)
class FileCheck:
    """One expected file: where it is, and what it hashes to (None when missing)."""

    name: str
    path: Path
    expected: str
    actual: str | None

    @property
    def ok(self) -> bool:
        return self.actual == self.expected

    def problem(self) -> str:
        """Why the file is not acceptable, in a few words ('' when it is)."""
        if self.actual is None:
            return f"{self.name} is missing"
        if not self.ok:
            return (
                f"{self.name} differs from the known file "
                f"(sha256 {self.actual[:12]}…, expected {self.expected[:12]}…)"
            )
        return ""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks so size never matters."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check(directory: str | Path, expected: Mapping[str, str] = KNOWN_SHA256) -> list[FileCheck]:
    """The state of every expected file in ``directory``; never raises for bad data."""
    root = Path(directory)
    checks = []
    for name, digest in expected.items():
        path = root / name
        actual = sha256_file(path) if path.is_file() else None
        checks.append(FileCheck(name, path, digest.lower(), actual))
    return checks


def verify(directory: str | Path, expected: Mapping[str, str] = KNOWN_SHA256) -> list[Path]:
    """The expected files' paths, or a KgptError naming every missing or differing one."""
    if not Path(directory).is_dir():
        raise KgptError(f"data folder {directory} does not exist; fetch the files or fix the path")
    checks = check(directory, expected)
    problems = _problems(checks)
    if problems:
        raise KgptError(
            f"data folder {directory}: {problems}; fetch the files again or point to the right folder"
        )
    return [c.path for c in checks]


def fetch(
    url: str,
    dest: str | Path,
    expected: Mapping[str, str] = KNOWN_SHA256,
    timeout: float = 60,
) -> list[Path]:
    """Download the expected files from ``url`` into ``dest``, verified; their paths.

    ``url`` is either an archive (zip or tar, compressed or not) holding the files, at
    any depth, or a folder URL ending in ``/`` from which each file is fetched by name.
    Nothing in ``dest`` changes unless every file arrived and matched.
    """
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in URL_SCHEMES:
        raise KgptError(
            f"cannot fetch {url!r}: expected an http, https or file URL "
            "(for a local archive write file:///absolute/path)"
        )
    dest = Path(dest).resolve()
    if dest.exists() and not dest.is_dir():
        raise KgptError(f"cannot fetch into {dest}: it is a file, not a folder")
    with _staging(dest) as staging:
        if url.endswith("/"):
            for name in expected:
                _download(url + urllib.parse.quote(name), staging / name, timeout)
        else:
            archive = staging / ".download"
            _download(url, archive, timeout)
            _extract(archive, url, expected, staging)
        problems = _problems(check(staging, expected))
        if problems:
            raise KgptError(f"refusing the data from {url}: {problems}; {dest} was left unchanged")
        dest.mkdir(exist_ok=True)
        for name in expected:
            os.replace(staging / name, dest / name)
    return [dest / name for name in expected]


def _problems(checks: list[FileCheck]) -> str:
    return "; ".join(c.problem() for c in checks if not c.ok)


@contextmanager
def _staging(dest: Path) -> Iterator[Path]:
    """A temporary folder beside ``dest`` (same filesystem, so os.replace is atomic).

    Removed afterwards whatever happens, so a failure leaves no partial files around.
    """
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.fetch-", dir=dest.parent))
    except OSError as e:
        raise KgptError(f"cannot write beside {dest}: {e.strerror}; choose another folder") from None
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _download(url: str, target: Path, timeout: float) -> None:
    """Stream ``url`` into ``target``; every network failure becomes one KgptError line."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, target.open("wb") as f:
            shutil.copyfileobj(response, f, _CHUNK)
    except urllib.error.HTTPError as e:
        e.close()  # it holds the error page's open connection
        raise KgptError(f"cannot fetch {url}: HTTP {e.code} {e.reason}; check the URL") from None
    except urllib.error.URLError as e:
        raise KgptError(f"cannot fetch {url}: {e.reason}; check the URL and the network") from None
    except (OSError, ValueError, http.client.HTTPException) as e:  # timeouts, cut-off bodies, bad URLs
        raise KgptError(f"cannot fetch {url}: {e}; check the URL and the network") from None


def _extract(archive: Path, url: str, expected: Mapping[str, str], staging: Path) -> None:
    """Copy each expected file out of ``archive`` into ``staging``.

    Only the expected files are written, under their bare names, so nothing can land
    outside ``staging``; still, an archive holding absolute or ``..`` paths is refused
    outright, as a sign it was not built for this.
    """
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, url, expected, staging)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, url, expected, staging)
        else:
            raise KgptError(
                f"{url} is not a zip or tar archive; give an archive URL, "
                "or a folder URL ending in '/' to fetch the files one by one"
            )
    except _DAMAGED as e:
        raise KgptError(f"archive from {url} is damaged ({e}); download it again") from None


def _extract_zip(archive: Path, url: str, expected: Mapping[str, str], staging: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        _refuse_unsafe(zf.namelist(), url)
        members = {info.filename: info for info in zf.infolist() if not info.is_dir()}
        for name, member in _find(members, expected, url).items():
            with zf.open(members[member]) as src:
                _copy(src, staging / name)


def _extract_tar(archive: Path, url: str, expected: Mapping[str, str], staging: Path) -> None:
    with tarfile.open(archive) as tf:
        _refuse_unsafe(tf.getnames(), url)
        members = {m.name: m for m in tf.getmembers() if not m.isdir()}
        for name, member in _find(members, expected, url).items():
            src = tf.extractfile(members[member]) if members[member].isfile() else None
            if src is None:
                raise KgptError(f"archive from {url}: {member} is a link or device, not a file; refusing it")
            with src:
                _copy(src, staging / name)


def _refuse_unsafe(names: list[str], url: str) -> None:
    """Refuse an archive with any absolute or ``..`` member path.

    ``\\`` counts as a separator too, as in archives made on Windows.
    """
    for member in names:
        path = PurePosixPath(member.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts:
            raise KgptError(f"archive from {url} holds an unsafe path {member!r}; refusing it")


def _find(members: Collection[str], expected: Mapping[str, str], url: str) -> dict[str, str]:
    """Expected file name → the one archive member with that name, at any depth."""
    found = {}
    for name in expected:
        matches = [m for m in members if PurePosixPath(m).name == name]
        if not matches:
            raise KgptError(f"archive from {url} has no {name}; check that it is the right archive")
        if len(matches) > 1:
            raise KgptError(f"archive from {url} holds {name} {len(matches)} times: {', '.join(matches)}")
        found[name] = matches[0]
    return found


def _copy(src: BinaryIO, target: Path) -> None:
    with target.open("wb") as f:
        shutil.copyfileobj(src, f, _CHUNK)
