"""Progress that reads in a log: where the output is not a terminal, one plain line per block, never a bar."""

import io
import re

from mcmc_landscape.runs import runner
from mcmc_landscape.runs.sampling import start_run

LINE = re.compile(r"^(warm-up|draws) (\d+)/(\d+) per chain, [\d,]+ draws/s, acc (nan|[01]\.\d{3}), step \S+, "
                  r"elapsed \d+:\d\d:\d\d, left (\d+:\d\d:\d\d|-:--:--)$")


def test_a_run_written_to_a_log_prints_one_plain_line_per_block(tmp_path, capsys):
    job = start_run({"chains": 2, "draws": 300, "warmup": 100, "seed": 3}, tmp_path / "c.h5", device="cpu")
    job.run(block_evals=200)  # many small blocks: 100 draws per block of 2 chains
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith(("warm-up", "draws"))]
    assert lines, err
    assert all(LINE.match(ln) for ln in lines), lines
    assert not any(ch in err for ch in "━…\r\x1b")  # no bar, no ellipsis, no carriage return, no escape code
    last = LINE.match(lines[-1])
    assert last.group(1) == "draws" and last.group(2) == last.group(3) == "300" and last.group(5) == "0:00:00"


def test_every_block_gives_a_line_when_not_throttled():
    class Kernel:
        left = 40

        def summary(self, state):
            return {"acceptance": 0.25, "step": 0.125, "nonfinite": 0}

        def warmup_left(self, state):
            return self.left

    out, kernel = io.StringIO(), Kernel()
    p = runner._Progress(False, 40, 90, 0, 3, stream=out, min_interval=0.0)
    for left, done in ((20, 0), (0, 0), (0, 30), (0, 60), (0, 90)):
        kernel.left = left
        p.update(kernel, None, done)
    p.close()
    lines = out.getvalue().splitlines()
    assert [ln.split(",")[0] for ln in lines] == ["warm-up 20/40 per chain", "draws 0/90 per chain",
                                                 "draws 30/90 per chain", "draws 60/90 per chain",
                                                 "draws 90/90 per chain"]
    assert all(LINE.match(ln) for ln in lines) and "acc 0.250, step 0.125" in lines[0]


def test_quiet_prints_nothing(tmp_path, capsys):
    job = start_run({"chains": 2, "draws": 50, "warmup": 10}, tmp_path / "q.h5", device="cpu")
    job.run(quiet=True)
    assert not re.search(r"^(warm-up|draws) ", capsys.readouterr().err, re.M)
