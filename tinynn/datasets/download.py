"""Downloading dataset files: checksum, progress bar, atomic rename.

A file is streamed into a temporary file next to its destination, its MD5 is
checked against the publisher's, and only then is it renamed into place
(``os.replace`` is atomic on one file system). Any failure (HTTP error, a
connection that closes early, a checksum mismatch, Ctrl-C) removes the temporary
file, so the destination either holds a verified file or nothing.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

_CHUNK = 1 << 16


class DownloadError(RuntimeError):
    """A dataset file could not be downloaded (every mirror failed); the message says why."""


def md5_of(path: "str | os.PathLike") -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _progress_bar(total: int | None, desc: str, enabled: bool):
    """A tqdm bar when tqdm is installed and ``enabled``; otherwise a no-op stand-in."""
    if enabled:
        try:
            from tqdm.auto import tqdm
            return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False)
        except ImportError:
            pass

    class _NoBar:
        def update(self, n):
            pass

        def close(self):
            pass

    return _NoBar()


def download_url(url: str, dest: "str | os.PathLike", md5: str | None = None,
                 progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically, checking its MD5 when given.

    Raises ``DownloadError`` (and leaves no file behind) when the server answers
    with an error, the transfer stops before Content-Length bytes, or the checksum
    does not match.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            _stream(url, out, progress, timeout, desc=dest.name)
        if md5 is not None:
            got = md5_of(tmp_name)
            if got != md5:
                raise DownloadError(f"{url}: checksum mismatch (md5 {got}, expected {md5})")
        os.replace(tmp_name, dest)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    return dest


def _stream(url: str, out, progress: bool, timeout: float, desc: str) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "tinynn"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None and length.isdigit() else None
            bar = _progress_bar(total, desc, progress)
            received = 0
            try:
                while True:
                    chunk = response.read(_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            finally:
                bar.close()
    except urllib.error.HTTPError as e:
        raise DownloadError(f"{url}: server answered HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise DownloadError(f"{url}: cannot connect ({e.reason})") from None
    except (OSError, ValueError) as e:  # includes http.client.IncompleteRead, timeouts, resets
        raise DownloadError(f"{url}: transfer failed ({type(e).__name__}: {e})") from None
    if total is not None and received != total:
        raise DownloadError(f"{url}: transfer interrupted after {received} of {total} bytes")


def download_from_mirrors(filename: str, mirrors: list[str], dest_dir: "str | os.PathLike",
                          md5: str | None, progress: bool = True) -> Path:
    """Try each mirror (a base URL) in turn; raise with every mirror's error if all fail."""
    errors = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + filename
        try:
            return download_url(url, Path(dest_dir) / filename, md5=md5, progress=progress)
        except DownloadError as e:
            errors.append(str(e))
    raise DownloadError(f"could not download {filename}:\n  " + "\n  ".join(errors))
