"""MNIST as users expect it: the four standard IDX files (gzip or not) from ``data.path`` or
``$SEQAE_DATA/mnist`` (default ``~/.cache/seqae/mnist``), checked against the published SHA-256 digests,
and downloaded when absent from a list of mirrors (``data.mirrors``) with a progress bar, resuming a
partial download, written atomically. Offline, the error says which files to put where.

The standard split: the 60,000 training images are the training split, the 10,000 test images the test
split. Pixels are bytes, scaled by 1/255.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqae.atomic import commit
from seqae.datasets.base import DataError

MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


@dataclass(frozen=True)
class MnistFile:
    name: str  # the file's name without .gz
    gz_sha256: str  # SHA-256 of the published .gz file
    sha256: str  # SHA-256 of its decompressed content
    count: int  # images or labels in it


# the published digests (the .gz files the mirrors serve) and those of their decompressed content
FILES = {
    "train_images": MnistFile("train-images-idx3-ubyte", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                              "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 60000),
    "train_labels": MnistFile("train-labels-idx1-ubyte", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                              "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60000),
    "test_images": MnistFile("t10k-images-idx3-ubyte", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                             "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 10000),
    "test_labels": MnistFile("t10k-labels-idx1-ubyte", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                             "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10000),
}


def mnist_folder(path: str = "") -> Path:
    """``path``, else ``$SEQAE_DATA/mnist``, else ``~/.cache/seqae/mnist``."""
    if path:
        return Path(path)
    root = os.environ.get("SEQAE_DATA")
    return Path(root) / "mnist" if root else Path.home() / ".cache" / "seqae" / "mnist"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified(folder: Path, spec: MnistFile) -> Path | None:
    """The file of ``spec`` in ``folder`` (``NAME.gz`` or ``NAME``) once its digest is checked; None if absent.
    A file whose digest differs is a DataError naming it."""
    for path, expected in ((folder / f"{spec.name}.gz", spec.gz_sha256), (folder / spec.name, spec.sha256)):
        if path.is_file():
            actual = sha256_of(path)
            if actual != expected:
                raise DataError(f"{path}: SHA-256 {actual[:16]}... is not the published MNIST digest {expected[:16]}...; "
                                "the file is damaged or another data set: delete it and run again to download it")
            return path
    return None


def download(spec: MnistFile, folder: Path, mirrors: list[str]) -> Path:
    """``NAME.gz`` from the first mirror that serves it, resumed from ``NAME.gz.part`` where one is left,
    checked against the published digest and renamed into place. Errors name the file and the mirrors."""
    folder.mkdir(parents=True, exist_ok=True)
    target, part = folder / f"{spec.name}.gz", folder / f"{spec.name}.gz.part"
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + f"/{spec.name}.gz"
        try:
            fetch(url, part)
        except (urllib.error.URLError, OSError, ValueError) as err:
            failures.append(f"{url}: {getattr(err, 'reason', err)}")
            continue
        actual = sha256_of(part)
        if actual != spec.gz_sha256:
            part.unlink()
            raise DataError(f"{url}: downloaded {spec.name}.gz has SHA-256 {actual[:16]}..., not the published {spec.gz_sha256[:16]}...; "
                            f"the partial file was removed: run again, or set data.mirrors to another mirror")
        commit(part, target)
        return target
    raise DataError(f"{folder}: {spec.name}.gz is missing and could not be downloaded ({'; '.join(failures)}). Offline, put "
                    f"the four MNIST files ({', '.join(f.name + '.gz' for f in FILES.values())}, gzip or not) in {folder}, "
                    "or set data.path to the folder that holds them")


def fetch(url: str, part: Path, chunk: int = 1 << 16) -> None:
    """Append ``url``'s bytes to ``part`` from where it ends (an HTTP Range request; a server that ignores
    it, or a file:// URL, is read from the start and the bytes already there skipped)."""
    from tqdm import tqdm

    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=60) as response:
        total = response.headers.get("Content-Length")
        ranged = getattr(response, "status", 200) == 206
        skip = 0 if ranged else have
        size = (int(total) + (have if ranged else 0)) if total else None
        with open(part, "ab" if ranged or not have else "r+b") as out, tqdm(
                total=size, initial=have, unit="B", unit_scale=True, desc=part.name[: -len(".part")],
                disable=not sys.stderr.isatty()) as bar:
            out.seek(have)
            while block := response.read(chunk):
                if skip:
                    cut = min(skip, len(block))
                    block, skip = block[cut:], skip - cut
                out.write(block)
                bar.update(len(block))
            out.truncate()


def read_idx_bytes(path: Path, spec: MnistFile) -> np.ndarray:
    """Images ``(count, 28, 28)`` or labels ``(count,)`` of one MNIST file, its header checked."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    images = "images" in spec.name
    header = 16 if images else 8
    magic = int.from_bytes(raw[:4], "big")
    count = int.from_bytes(raw[4:8], "big")
    if magic != (2051 if images else 2049) or count != spec.count or len(raw) != header + count * (784 if images else 1):
        raise DataError(f"{path}: not the MNIST {spec.name} file (magic {magic}, {count} items, {len(raw)} bytes)")
    data = np.frombuffer(raw, dtype=np.uint8, offset=header)
    return data.reshape(count, 28, 28) if images else data


def load_mnist(path: str = "", mirrors: list[str] | None = None, allow_download: bool = True):
    """``(train_x (60000, 784) uint8, train_y, test_x (10000, 784), test_y)`` from the folder (see
    :func:`mnist_folder`), downloading what is missing when ``allow_download``."""
    folder = mnist_folder(path)
    found = {}
    for key, spec in FILES.items():
        file = verified(folder, spec)
        if file is None and allow_download:
            file = download(spec, folder, list(mirrors or MIRRORS))
        if file is None:
            raise DataError(f"{folder}: {spec.name}.gz (or {spec.name}) is missing and data.download is false; put the "
                            f"four MNIST files there, or set data.path to the folder that holds them")
        found[key] = read_idx_bytes(file, spec)
    return (found["train_images"].reshape(-1, 784), found["train_labels"].astype(np.int64),
            found["test_images"].reshape(-1, 784), found["test_labels"].astype(np.int64))
