"""Readers of MNIST (IDX), CIFAR-10 (python batches) and PTB on small files written in those formats, the restricted
unpickler, and the real files where the data folder is present."""

import pickle

import numpy as np
import pytest
from image_files import synthetic_images, write_cifar, write_idx, write_mnist  # noqa: F401

from mcmc_landscape.data.datasets import real_data_dir
from mcmc_landscape.data.realdata import load_cifar10, load_mnist, load_ptb, read_cifar_batch, read_idx
from mcmc_landscape.errors import DataError


def test_idx_round_trip_and_clear_errors(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", a)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), a)
    b = (np.arange(6).reshape(2, 3) - 3).astype(">i4")
    write_idx(tmp_path / "b", b, gz=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "b"), b.astype(np.int32))
    (tmp_path / "short").write_bytes((tmp_path / "b").read_bytes()[:-2])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "junk").write_bytes(b"\x89PNG....")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "junk")


def test_mnist_reader_on_synthetic_files(tmp_path):
    write_mnist(tmp_path)
    x, y = load_mnist("train", tmp_path)
    assert x.shape == (60, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal((x[:, :, :14].mean(axis=(1, 2)) > x[:, :, 14:].mean(axis=(1, 2))), y == 1)
    assert load_mnist("test", tmp_path)[0].shape == (30, 28, 28)
    with pytest.raises(DataError, match="is not a folder"):
        load_mnist("train", tmp_path / "nowhere")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\(.gz\) is not in"):
        load_mnist("test", tmp_path)


def test_cifar_reader_restores_the_image_layout_and_refuses_code(tmp_path):
    write_cifar(tmp_path)
    x, y = load_cifar10("train", tmp_path)
    assert x.shape == (100, 32, 32, 3) and len(y) == 100
    first, _ = read_cifar_batch(tmp_path / "cifar10" / "data_batch_1")
    again, _ = synthetic_images(20, 32, 3, 10)
    np.testing.assert_array_equal(first, again)
    assert load_cifar10("test", tmp_path)[0].shape == (20, 32, 32, 3)

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    bad = tmp_path / "evil"
    bad.write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}, protocol=2))
    with pytest.raises(DataError, match="not allowed"):
        read_cifar_batch(bad)
    with pytest.raises(DataError, match="not shipped"):
        load_cifar10("train", tmp_path / "cifar10")  # a folder without cifar10/ inside


def test_ptb_reader_vocabulary_and_unknown_words(tmp_path):
    d = tmp_path / "ptb"
    d.mkdir()
    (d / "ptb.train.txt").write_text(" the cat sat on the mat \n the dog \n")
    (d / "ptb.valid.txt").write_text(" the cat \n")
    (d / "ptb.test.txt").write_text(" a bird \n")
    train = load_ptb("train", tmp_path)
    assert train.vocab[:2] == ("the", "<eos>") and len(train.ids) == 10
    assert [train.vocab[i] for i in load_ptb("valid", tmp_path).ids] == ["the", "cat", "<eos>"]
    small = load_ptb("valid", tmp_path, vocab_size=3)
    assert small.vocab == ("the", "<eos>", "<unk>") and [small.vocab[i] for i in small.ids] == ["the", "<unk>", "<eos>"]
    with pytest.raises(DataError, match="lacks"):
        load_ptb("test", tmp_path)


REAL = real_data_dir()


@pytest.mark.skipif(REAL is None or not (REAL / "mnist").is_dir(),
                    reason="real MNIST not found: set MCMC_LANDSCAPE_DATA to a folder holding mnist/")
def test_real_mnist_matches_its_published_statistics():
    x, y = load_mnist("train")
    assert x.shape == (60000, 28, 28) and y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert abs(x.mean() / 255 - 0.1306604763) < 1e-9
    assert np.bincount(load_mnist("test")[1]).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.skipif(REAL is None or not (REAL / "ptb").is_dir(),
                    reason="real PTB not found: set MCMC_LANDSCAPE_DATA to a folder holding ptb/")
def test_real_ptb_has_its_published_size():
    train = load_ptb("train")
    assert len(train.ids) == 929_589 and len(train.vocab) == 10_000
    assert len(load_ptb("valid").ids) == 73_760 and len(load_ptb("test").ids) == 82_430
