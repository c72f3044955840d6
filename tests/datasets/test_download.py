"""Downloads against a local HTTP server on 127.0.0.1 that serves files the test builds.

The server can answer normally, with an error status, or close the connection
after half the body (an interrupted transfer).
"""
from __future__ import annotations

import gzip
import hashlib
import http.server
import threading

import numpy as np
import pytest

from tinynn.datasets import MNIST, DownloadError, FashionMNIST, download_url
from tinynn.datasets.formats import encode_idx


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    mode = "ok"          # "ok" | "500" | "404" | "truncate"
    requests: list[str] = []

    def do_GET(self):
        type(self).requests.append(self.path)
        name = self.path.rsplit("/", 1)[-1]
        known = self.path.startswith("/mirror/") and name in self.files
        if self.mode in ("500", "404") or not known:
            code = 500 if self.mode == "500" else 404
            self.send_error(code)
            return
        body = self.files[name]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.mode == "truncate":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture
def server():
    """A threaded HTTP server on 127.0.0.1 (a free port); yields (base_url, handler class)."""
    handler = type("Handler", (_Handler,), {"files": {}, "mode": "ok", "requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/mirror/", handler
    httpd.shutdown()
    httpd.server_close()


def _mnist_files(n: int = 6, seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    files = {}
    for prefix in ("train", "t10k"):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        files[f"{prefix}-images-idx3-ubyte.gz"] = gzip.compress(encode_idx(images), mtime=0)
        files[f"{prefix}-labels-idx1-ubyte.gz"] = gzip.compress(encode_idx(labels), mtime=0)
    return files


def _md5(raw: bytes) -> str:
    return hashlib.md5(raw).hexdigest()


def _leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_download_url_success_and_checksum(server, tmp_path):
    base, handler = server
    handler.files = {"blob.bin": b"x" * 100_000}
    dest = download_url(base + "blob.bin", tmp_path / "d" / "blob.bin", md5=_md5(b"x" * 100_000), progress=False)
    assert dest.read_bytes() == b"x" * 100_000
    assert _leftovers(tmp_path / "d") == ["blob.bin"]


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    base, handler = server
    handler.files = {"blob.bin": b"y" * 1000}
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_url(base + "blob.bin", tmp_path / "blob.bin", md5="0" * 32, progress=False)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("mode, message", [("500", "HTTP 500"), ("404", "HTTP 404")])
def test_server_errors_leave_nothing(server, tmp_path, mode, message):
    base, handler = server
    handler.files, handler.mode = {"blob.bin": b"z" * 1000}, mode
    with pytest.raises(DownloadError, match=message):
        download_url(base + "blob.bin", tmp_path / "blob.bin", progress=False)
    assert _leftovers(tmp_path) == []


def test_interrupted_transfer_leaves_nothing(server, tmp_path):
    base, handler = server
    handler.files, handler.mode = {"blob.bin": b"w" * 200_000}, "truncate"
    with pytest.raises(DownloadError, match="interrupted|transfer failed"):
        download_url(base + "blob.bin", tmp_path / "blob.bin", progress=False)
    assert _leftovers(tmp_path) == []


def test_existing_file_survives_a_failed_download(server, tmp_path):
    base, handler = server
    (tmp_path / "blob.bin").write_bytes(b"old")
    handler.files, handler.mode = {"blob.bin": b"new" * 1000}, "truncate"
    with pytest.raises(DownloadError):
        download_url(base + "blob.bin", tmp_path / "blob.bin", progress=False)
    assert (tmp_path / "blob.bin").read_bytes() == b"old"


def test_dataset_download_through_mirror_env(server, isolated_data_dirs, monkeypatch):
    base, handler = server
    handler.files = _mnist_files()
    monkeypatch.setattr(MNIST, "resources", [(name, _md5(raw)) for name, raw in handler.files.items()])
    monkeypatch.setenv("TINYNN_MIRROR", base)
    root = isolated_data_dirs / "root"
    ds = MNIST(root, train=True, download=True)
    assert len(ds) == 6
    assert _leftovers(root) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    assert (root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").read_bytes() == handler.files[
        "train-images-idx3-ubyte.gz"]
    handler.requests.clear()
    MNIST(root, train=True, download=True)          # already there: no request
    assert handler.requests == []


def test_dataset_download_tries_mirrors_in_order(server, isolated_data_dirs, monkeypatch):
    base, handler = server
    handler.files = _mnist_files()
    monkeypatch.setattr(FashionMNIST, "resources", [(name, _md5(raw)) for name, raw in handler.files.items()])
    dead = base.replace("/mirror/", "/dead/")       # answers 404 for everything
    ds = FashionMNIST(isolated_data_dirs / "r", train=False, download=True, mirrors=[dead, base])
    assert len(ds) == 6
    assert [p.split("/")[1] for p in handler.requests] == ["dead", "mirror", "dead", "mirror"]


def test_dataset_download_with_wrong_checksum_fails_cleanly(server, isolated_data_dirs, monkeypatch):
    base, handler = server
    handler.files = _mnist_files()      # MNIST.resources keeps the publisher's MD5s: they cannot match
    root = isolated_data_dirs / "root"
    with pytest.raises(DownloadError) as info:
        MNIST(root, train=False, download=True, mirrors=[base])
    assert "checksum mismatch" in str(info.value) and "t10k-images-idx3-ubyte.gz" in str(info.value)
    assert _leftovers(root) == []


def test_dataset_download_all_mirrors_down(server, isolated_data_dirs):
    base, handler = server
    handler.mode = "500"
    with pytest.raises(DownloadError) as info:
        MNIST(isolated_data_dirs / "root", download=True, mirrors=[base, base + "again/"])
    assert str(info.value).count("HTTP 500") == 2


def test_cifar10_download_and_read_from_the_archive(server, isolated_data_dirs, monkeypatch, tmp_path):
    from dataset_files import make_cifar_archive

    from tinynn.datasets import CIFAR10
    base, handler = server
    archive = tmp_path / "built.tar.gz"
    make_cifar_archive(archive, n_per_batch=3)
    handler.files = {"cifar-10-python.tar.gz": archive.read_bytes()}
    monkeypatch.setattr(CIFAR10, "archive", ("cifar-10-python.tar.gz", _md5(archive.read_bytes())))
    root = isolated_data_dirs / "root"
    ds = CIFAR10(root, train=False, download=True, mirrors=[base])
    assert ds.data.shape == (3, 32, 32, 3)
    assert _leftovers(root) == ["cifar-10-python.tar.gz"]
