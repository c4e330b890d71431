"""Figures never switch the user's matplotlib backend nor leave figures open in pyplot (a notebook would show them)."""

import subprocess
import sys
import textwrap

from paths import ROOT


def test_drawing_keeps_the_backend_and_pyplot_empty(tmp_path):
    script = textwrap.dedent(f"""
        import matplotlib
        matplotlib.use("svg")  # the user's choice, which drawing must not change
        import matplotlib.pyplot as plt
        import numpy as np
        from pathlib import Path
        from analysis.plots import embedding_3d, good_minima_2d
        from analysis.experiment import data_figure
        from mcmc_landscape.figures import new_figure

        out = Path({str(tmp_path)!r})
        rng = np.random.default_rng(0)
        files = [embedding_3d(rng.normal(size=(20, 3)), rng.random(20), out / "a.png"),
                 good_minima_2d(rng.normal(size=(20, 2)), rng.random(20), out / "b.png"),
                 data_figure(out / "c.png", rng.normal(size=(10, 2)), np.arange(10) % 2, "data")]
        new_figure().savefig(out / "d.png")
        assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
        assert plt.get_fignums() == [], plt.get_fignums()
        assert all(Path(f).stat().st_size > 1000 for f in files)
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "MPLBACKEND": ""})
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
