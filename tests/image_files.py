"""Small files in the MNIST (IDX) and CIFAR-10 (python batch) formats, with images a convnet can learn."""

import gzip
import pickle
import struct

import numpy as np


def write_idx(path, array, gz=True):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def synthetic_images(n, side, channels, seed):
    """Images whose class (0 or 1) is whether the left half is brighter than the right: learnable by a convnet."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    shape = (n, side, side) if channels == 1 else (n, side, side, channels)
    x = rng.integers(0, 100, size=shape)
    half = side // 2
    x[y == 1, :, :half] += 150
    x[y == 0, :, half:] += 150
    return x.astype(np.uint8), y


def write_mnist(folder, n_train=60, n_test=30):
    d = folder / "mnist"
    d.mkdir(parents=True)
    for split, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        x, y = synthetic_images(n, 28, 1, seed)
        write_idx(d / f"{split}-images-idx3-ubyte.gz", x)
        write_idx(d / f"{split}-labels-idx1-ubyte", y.astype(np.uint8), gz=False)
    return folder


def write_cifar(folder, n=20):
    d = folder / "cifar10"
    d.mkdir(parents=True)
    for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        x, y = synthetic_images(n, 32, 3, 10 + k)
        rows = x.transpose(0, 3, 1, 2).reshape(n, 3072)  # the stored layout: channel-major rows
        with open(d / name, "wb") as fh:
            pickle.dump({b"batch_label": name.encode(), b"labels": y.tolist(), b"data": rows,
                         b"filenames": [b"img%d.png" % i for i in range(n)]}, fh, protocol=2)
    return folder
