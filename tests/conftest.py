import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # so tests can import helpers.py


@pytest.fixture
def points10():
    from mcmc_landscape.data.datasets import load_dataset

    return load_dataset("points10")
