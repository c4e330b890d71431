import sys
from pathlib import Path

import pytest

# the tests mirror the packages in folders of their own; the modules they share (helpers, cli_helpers, image_files,
# landscapes, paths) stay here, importable from every folder
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def points10():
    from mcmc_landscape.data.datasets import load_dataset

    return load_dataset("points10")
