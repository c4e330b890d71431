"""``python -m landscape_cli``: the same as the ``landscape`` command."""

import sys

from .main import main

sys.exit(main())
