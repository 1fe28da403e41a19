"""One download function: a URL (``https://``, ``http://``, ``file://``) to a file, with its digests.

Checks the transfer is complete (the bytes received against the server's ``Content-Length``) and
returns the MD5 and SHA-256 of what was written, so the caller verifies an archive against a
published checksum before extracting anything. Standard library only.
"""
from __future__ import annotations

import hashlib
import http.client
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rec_jax.data.errors import DataError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Downloaded:
    path: Path
    num_bytes: int
    md5: str
    sha256: str


def download(url: str, dest: str | Path, timeout: float = 30.0) -> Downloaded:
    """Stream ``url`` into ``dest``; raises ``DataError`` (naming the file) on a short transfer.

    ``dest`` is left behind on failure: the caller writes it inside a staging folder that it
    removes (``rec_jax.data.fetch``), so no partial file ever reaches the cache.
    """
    dest = Path(dest)
    name = url.rstrip("/").rsplit("/", 1)[-1]
    md5, sha = hashlib.md5(), hashlib.sha256()
    n = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(dest, "wb") as f:
            length = r.headers.get("Content-Length") if getattr(r, "headers", None) else None
            while chunk := r.read(CHUNK):
                f.write(chunk)
                md5.update(chunk)
                sha.update(chunk)
                n += len(chunk)
    except http.client.IncompleteRead as e:  # not an OSError: the server closed the connection early
        raise DataError(f"{name}: truncated download from {url}: got {n + len(e.partial)} bytes, "
                        f"expected {n + len(e.partial) + (e.expected or 0)}") from None
    if length is not None and n != int(length):
        raise DataError(f"{name}: truncated download from {url}: got {n} bytes, expected {int(length)}")
    return Downloaded(dest, n, md5.hexdigest(), sha.hexdigest())


def read_md5_sidecar(url: str, timeout: float = 30.0) -> str:
    """The MD5 published at ``url`` (GroupLens' ``ml-1m.zip.md5``: ``MD5 (ml-1m.zip) = <hex>``,
    or ``md5sum``'s ``<hex>  name``): the one 32-hex-digit token in it."""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        text = r.read(4096).decode("ascii", errors="replace")
    found = re.findall(r"\b[0-9a-fA-F]{32}\b", text)
    if len(found) != 1:
        raise DataError(f"{url}: expected one MD5 digest, found {len(found)} in {text[:80]!r}")
    return found[0].lower()
