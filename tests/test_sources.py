import gzip
import hashlib
import zipfile

import pytest

from llm4sbr_core.data import sources
from llm4sbr_core.data.sources import DownloadError, RemoteFile, Source, download_source


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def release(tmp_path, monkeypatch):
    """A fake 'official release' served from file:// URLs."""
    server = tmp_path / "server"
    server.mkdir()
    good = gzip.compress(b'{"reviewerID": "A", "asin": "B", "unixReviewTime": 1}\n')
    (server / "reviews.json.gz").write_bytes(good)
    with zipfile.ZipFile(server / "ml.zip", "w") as zf:
        zf.writestr("ml/ratings.dat", "1::2::3::4\n")
        zf.writestr("ml/movies.dat", "2::T (1999)::Drama\n")
    zbytes = (server / "ml.zip").read_bytes()
    registry = {
        "gz": Source(kind="files", description="t", files={
            "reviews.json.gz": RemoteFile((server / "reviews.json.gz").as_uri(),
                                          size=len(good), md5=md5(good))}),
        "zip": Source(kind="zip", description="t",
                      archive=RemoteFile((server / "ml.zip").as_uri(), size=len(zbytes),
                                         md5=md5(zbytes)),
                      members={"ratings.dat": "ml/ratings.dat", "movies.dat": "ml/movies.dat"}),
    }
    monkeypatch.setattr(sources, "SOURCES", registry)
    return server, registry


def test_download_verified_file(release, tmp_path):
    download_source("gz", tmp_path / "raw")
    assert (tmp_path / "raw" / "reviews.json.gz").exists()
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["reviews.json.gz"]


def test_checksum_mismatch_leaves_nothing(release, tmp_path):
    server, _ = release
    data = (server / "reviews.json.gz").read_bytes()
    (server / "reviews.json.gz").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(DownloadError, match="md5"):
        download_source("gz", tmp_path / "raw")
    assert list((tmp_path / "raw").iterdir()) == []


def test_truncated_gzip_is_rejected(release, tmp_path, monkeypatch):
    server, registry = release
    data = (server / "reviews.json.gz").read_bytes()[:-10]
    (server / "reviews.json.gz").write_bytes(data)
    unverified = Source(kind="files", description="t", files={
        "reviews.json.gz": RemoteFile((server / "reviews.json.gz").as_uri())})
    monkeypatch.setitem(registry, "gz", unverified)
    with pytest.raises(DownloadError, match="truncated or corrupt"):
        download_source("gz", tmp_path / "raw")
    assert list((tmp_path / "raw").iterdir()) == []


def test_zip_members(release, tmp_path):
    download_source("zip", tmp_path / "raw", ["ratings.dat", "movies.dat"])
    assert (tmp_path / "raw" / "ratings.dat").read_text() == "1::2::3::4\n"
    with pytest.raises(DownloadError, match="place those files"):
        download_source("zip", tmp_path / "raw", ["ratings.partial.dat.gz"])


def test_unreachable_url(tmp_path, monkeypatch):
    src = Source(kind="files", description="t",
                 files={"x.gz": RemoteFile((tmp_path / "missing.gz").as_uri())})
    monkeypatch.setattr(sources, "SOURCES", {"x": src})
    with pytest.raises(DownloadError, match="cannot download"):
        download_source("x", tmp_path / "raw")
    assert list((tmp_path / "raw").iterdir()) == []


@pytest.mark.integration
def test_ml100k_from_the_recbole_wheel(tmp_path):
    """The real ml-100k source: pip fetches recbole 1.2.1, members are checked by sha256."""
    download_source("ml-100k-recbole", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml-100k.inter", "ml-100k.item"]
