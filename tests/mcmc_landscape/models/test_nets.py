import numpy as np
import pytest

from mcmc_landscape.errors import SpecError
from mcmc_landscape.models.nets import MLPSpec, parse_arch


@pytest.mark.parametrize("text,widths", [("2,2", (2, 2)), ("4", (4,)), ("10,10,10", (10, 10, 10)),
                                         (" 3 , 5 ", (3, 5)), ("[2,2]", (2, 2)), ("", ())])
def test_parse_arch(text, widths):
    assert parse_arch(text) == widths


@pytest.mark.parametrize("text", ["2,,x", "a", "2;2", "-1", "2,0", "1.5"])
def test_parse_arch_rejects_bad_strings(text):
    with pytest.raises(SpecError, match="architecture"):
        parse_arch(text)


def test_param_count_matches_report():
    assert MLPSpec.from_string("2,2").n_params == 18  # the report's p = 18
    assert MLPSpec.from_string("4").n_params == 2 * 4 + 4 + 4 * 2 + 2
    assert MLPSpec.from_string("10,10,10").n_params == (2 * 10 + 10) + 2 * (10 * 10 + 10) + (10 * 2 + 2)


def test_flat_layout_is_w_row_major_then_b():
    spec = MLPSpec.from_string("3")
    theta = np.arange(spec.n_params, dtype=float)
    (W1, b1), (W2, b2) = spec.unflatten(theta)
    assert W1.shape == (2, 3) and W1[0, 1] == 1 and W1[1, 0] == 3  # row-major (in × out)
    assert list(b1) == [6, 7, 8]
    assert W2.shape == (3, 2) and W2[0, 0] == 9 and list(b2) == [15, 16]
    np.testing.assert_array_equal(spec.flatten(spec.unflatten(theta)), theta)


def test_unknown_activation():
    with pytest.raises(SpecError, match="activation"):
        MLPSpec.from_string("2", activation="softsign")


def test_spec_from_widths_round_trips_the_stored_widths():
    from mcmc_landscape.models.nets import MLPSpec

    spec = MLPSpec.from_string("3,4", n_in=5, n_out=7, activation="tanh")
    again = MLPSpec.from_widths(list(spec.widths), "tanh")
    assert again == spec and again.widths == (5, 3, 4, 7) and again.hidden == (3, 4)
    assert MLPSpec.from_widths([2, 2]).hidden == ()
    import pytest

    from mcmc_landscape.errors import SpecError

    with pytest.raises(SpecError):
        MLPSpec.from_widths([3])
