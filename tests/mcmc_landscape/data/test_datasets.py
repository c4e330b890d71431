import numpy as np
import pytest

from mcmc_landscape.data.datasets import (
    POINTS10_SEED,
    REPO_DATA_DIR,
    load_dataset,
    make_points10,
    read_points_csv,
    rotation_matrix,
)
from mcmc_landscape.errors import DataError


def test_shipped_points10_is_the_seeded_set():
    shipped = read_points_csv(REPO_DATA_DIR / "points10.csv")
    regenerated = make_points10(POINTS10_SEED)
    np.testing.assert_array_equal(shipped.x, regenerated.x)
    np.testing.assert_array_equal(shipped.y, regenerated.y)
    assert shipped.x.shape == (10, 2) and np.all(np.abs(shipped.x) <= 1)
    assert set(shipped.y.tolist()) == {0, 1}


def test_rotation_about_origin(points10):
    r = points10.rotated(120)
    np.testing.assert_allclose(np.linalg.norm(r.x, axis=1), np.linalg.norm(points10.x, axis=1))
    np.testing.assert_allclose(r.rotated(120).rotated(120).x, points10.x, atol=1e-12)
    np.testing.assert_allclose(rotation_matrix(90) @ [1.0, 0.0], [0.0, 1.0], atol=1e-15)  # counter-clockwise
    np.testing.assert_array_equal(load_dataset("points10", 240).x, points10.rotated(240).x)


def test_csv_with_nan_is_refused(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("x1,x2,label\n0.1,0.2,0\nnan,0.3,1\n")
    with pytest.raises(DataError, match="NaN"):
        read_points_csv(f)


@pytest.mark.parametrize("text,match", [("x1,x2,label\n0.1,0.2\n0.3,0.4,1\n", "numeric|shape|rows"),
                                        ("x1,x2,label\n0.1,0.2,0\n0.3,0.4,0\n", "two classes"),
                                        ("x1,x2,label\n0.1,0.2,0.5\n0.3,0.4,1\n", "integers"),
                                        ("hello\nworld\n", "numeric|rows")])
def test_malformed_csv_is_refused(tmp_path, text, match):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(DataError, match=match):
        read_points_csv(f)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(str(tmp_path / "nope.csv"))
