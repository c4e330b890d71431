"""Readers for the real data sets of the DSS experiments: MNIST (IDX files), CIFAR-10 (python batches) and Penn
Treebank (text), from a data folder laid out as ``mnist/``, ``cifar10/`` (or ``cifar-10-batches-py/``) and ``ptb/``.

The folder is ``data_dir`` when given, else ``$MCMC_LANDSCAPE_DATA``, else ``../shared/data`` beside the checkout
(:func:`mcmc_landscape.data.datasets.real_data_dir`). A missing or malformed file is a :class:`DataError` that names the file
and the setting to fix. CIFAR-10 batches are pickles: they are read by an unpickler that admits only what those files
hold (dicts, lists, bytes, strings, numbers and numpy arrays), so a crafted file cannot run code.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcmc_landscape.data.datasets import DATA_ENV, real_data_dir
from mcmc_landscape.errors import DataError

IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
CIFAR_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
CIFAR_DIRS = ("cifar10", "cifar-10-batches-py")


def data_folder(data_dir: str | os.PathLike | None, what: str) -> Path:
    """The data folder to read ``what`` from, or a clear error saying how to name one."""
    folder = Path(data_dir) if data_dir is not None else real_data_dir()
    if folder is None or not folder.is_dir():
        where = f"{str(folder)!r} is not a folder" if folder is not None else "no data folder is set"
        raise DataError(f"{what} needs the real data sets but {where}; set ${DATA_ENV} (or --data-dir) to the folder "
                        "holding mnist/, cifar10/ and ptb/.")
    return folder


def _split(split: str) -> str:
    if split not in ("train", "test", "valid"):
        raise DataError(f"unknown split {split!r}; use train, valid or test.")
    return split


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (the MNIST format), gzipped or not: magic 0x0000TTNN, N big-endian dimensions, then the data."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read IDX file {str(path)!r} ({exc}); replace it with an intact copy.") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise DataError(f"{str(path)!r} is not an IDX file (bad magic number); replace it with an intact copy.")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    dtype = np.dtype(IDX_TYPES[raw[2]])
    start = 4 + 4 * ndim
    if len(raw) - start != int(np.prod(dims)) * dtype.itemsize:
        raise DataError(f"IDX file {str(path)!r} is truncated or padded: its header promises {tuple(dims)} values; "
                        "replace it with an intact copy.")
    return np.frombuffer(raw, dtype=dtype, offset=start).reshape(tuple(dims)).astype(dtype.newbyteorder("="))


def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / (name + ".gz")):
        if candidate.is_file():
            return candidate
    raise DataError(f"{name}(.gz) is not in {str(folder)!r}; set ${DATA_ENV} (or --data-dir) to the folder that holds "
                    "mnist/ with the four IDX files.")


def load_mnist(split: str = "train", data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images (n, 28, 28) uint8 and labels (n,) int64 of ``split`` (train: 60,000; test: 10,000)."""
    split = "test" if _split(split) == "valid" else split
    folder = data_folder(data_dir, "MNIST") / "mnist"
    images = read_idx(_find(folder, MNIST_FILES[split][0]))
    labels = read_idx(_find(folder, MNIST_FILES[split][1])).astype(np.int64)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"MNIST {split} files in {str(folder)!r} do not match: images {images.shape}, labels "
                        f"{labels.shape}; replace them with intact copies.")
    if labels.min() < 0 or labels.max() > 9:
        raise DataError(f"MNIST {split} labels in {str(folder)!r} are outside 0-9; replace the file.")
    return images, labels


class _ArraysOnly(pickle.Unpickler):
    """Admit the globals a pickled numpy array needs and nothing else."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data batch")
        if module == "_codecs":
            import codecs

            return codecs.encode
        if name == "_reconstruct":
            from numpy._core import multiarray  # numpy 2; older pickles name numpy.core

            return multiarray._reconstruct
        return getattr(np, name)


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: images (n, 32, 32, 3) uint8 (from the stored (n, 3072) channel-major rows) and
    labels (n,) int64."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            batch = _ArraysOnly(io.BytesIO(fh.read()), encoding="bytes").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"{str(path)!r} is not a readable CIFAR-10 batch ({exc}); replace it with an intact copy.") \
            from None
    if not isinstance(batch, dict):
        raise DataError(f"{str(path)!r} is not a CIFAR-10 batch (it holds a {type(batch).__name__}, not a dict).")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(data, np.ndarray) or labels is None:
        raise DataError(f"{str(path)!r} lacks the 'data' array or the 'labels' list of a CIFAR-10 batch.")
    labels = np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise DataError(f"{str(path)!r}: 'data' must be uint8 of shape (n, 3072) matching {len(labels)} labels, got "
                        f"{data.dtype} {data.shape}.")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{str(path)!r}: labels outside 0-9.")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def load_cifar10(split: str = "train", data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 images (n, 32, 32, 3) uint8 and labels (n,) of ``split`` from the python batches."""
    split = "test" if _split(split) == "valid" else split
    root = data_folder(data_dir, "CIFAR-10")
    folders = [root / d for d in CIFAR_DIRS if (root / d / CIFAR_FILES[split][0]).is_file()]
    if not folders:
        raise DataError(f"the CIFAR-10 {split} batches ({', '.join(CIFAR_FILES[split])}) are not in "
                        f"{str(root / 'cifar10')!r}; unpack cifar-10-python.tar.gz there (they are not shipped) or point "
                        f"${DATA_ENV} (or --data-dir) at a folder that holds them.")
    parts = [read_cifar_batch(folders[0] / name) for name in CIFAR_FILES[split] if (folders[0] / name).is_file()]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@dataclass(frozen=True)
class Corpus:
    """A tokenized PTB split: ``ids`` (n_tokens,) into ``vocab``; one ``<eos>`` closes every line."""

    ids: np.ndarray
    vocab: tuple[str, ...]


def _tokens(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read PTB file {str(path)!r} ({exc}); replace it with an intact copy.") from None
    return [w for line in text.splitlines() for w in (*line.split(), "<eos>")]


def load_ptb(split: str = "train", data_dir: str | os.PathLike | None = None, vocab_size: int | None = None) -> Corpus:
    """PTB (language-model version) as token ids. The vocabulary is the training split's (10,000 words with
    ``<eos>``), ordered by frequency (ties alphabetically), so id 0 is the most frequent word. With ``vocab_size`` the
    rarer words map to ``<unk>`` (kept in the vocabulary): a smaller output layer for CPU-sized models."""
    folder = data_folder(data_dir, "PTB") / "ptb"
    paths = {s: folder / f"ptb.{s}.txt" for s in ("train", _split(split))}
    for p in paths.values():
        if not p.is_file():
            raise DataError(f"{str(p)!r} does not exist; set ${DATA_ENV} (or --data-dir) to the folder holding "
                            "ptb/ptb.train.txt, ptb.valid.txt and ptb.test.txt.")
    counts = Counter(_tokens(paths["train"]))
    words = sorted(counts, key=lambda w: (-counts[w], w))
    if vocab_size is not None:
        if vocab_size < 2:
            raise DataError(f"a PTB vocabulary needs at least 2 words, got {vocab_size}.")
        words = [w for w in words if w != "<unk>"][: vocab_size - 1] + ["<unk>"]
    index = {w: i for i, w in enumerate(words)}
    unk = index.get("<unk>")
    tokens = _tokens(paths[split])
    ids = np.fromiter((index.get(w, -1 if unk is None else unk) for w in tokens), dtype=np.int64, count=len(tokens))
    if (ids < 0).any():
        raise DataError(f"{str(paths[split])!r} holds words that the training split lacks; is it the PTB LM version?")
    return Corpus(ids, tuple(words))
