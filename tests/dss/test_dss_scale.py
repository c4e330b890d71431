"""DSS at scale: devices, minibatch bead training, the paper's real-data tasks from the zoo, resumable sweeps, errors."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_sentence_error, run_cli

from dss.device import resolve_device
from dss.optim import train_to
from dss.store import load_string
from dss.string import DSSSettings, connect
from dss.sweep import train_models
from dss.tasks import make_task
from mcmc_landscape.errors import DataError, SpecError
from mcmc_landscape.models.zoo import FlatLayout, build_model

NO_GPU = not torch.cuda.is_available()


@pytest.mark.skipif(not NO_GPU, reason="a GPU is present: asking for it is not an error here")
def test_cuda_without_a_gpu_is_one_sentence(tmp_path, capsys):
    with pytest.raises(SpecError, match="no CUDA GPU"):
        make_task("cubic", device="cuda")
    for args in (["connect", "--l0", "0.1", "--out", str(tmp_path / "c.h5")],
                 ["sweep", "--l0", "0.1", "--out", str(tmp_path / "s")]):
        code, _, err = run_cli(capsys, "dss", *args, "--device", "cuda")
        assert_one_sentence_error(code, err)
        assert "--device cuda" in err
    assert not (tmp_path / "c.h5").exists()


def test_device_path_gives_the_same_string_as_the_default():
    """The same string whether the task is put on a device explicitly (to(), make_task(device=)) or left where it
    was built; every tensor the run makes is on the task's device (here the CPU: no GPU in CI)."""
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    s = DSSSettings(l0=0.05, seed=2)
    strings = []
    for task in (make_task("quadratic"), make_task("quadratic", device="cpu").to(resolve_device("cpu"))):
        models, reached, _, _ = train_models(task, 2, s.alpha * s.l0, torch.Generator().manual_seed(1), s, 20000, 3)
        assert models.device == task.device and bool(reached.all())
        host = models.cpu().numpy()
        strings.append(connect(task, host[0], host[1], s))
    for st in strings[1:]:
        assert st.order == strings[0].order
        np.testing.assert_array_equal(np.stack(st.beads), np.stack(strings[0].beads))


class Classes:
    """A minibatch task on 2-D points in two classes: a linear model, level = error on held-out points."""

    def __init__(self, batch_size):
        from dss.module_task import ModuleTask

        rng = np.random.default_rng(0)
        x = torch.as_tensor(rng.normal(size=(600, 2)), dtype=torch.float32)
        y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
        ce = lambda out, t: torch.nn.functional.cross_entropy(out, t)  # noqa: E731
        err = lambda out, t: (out.argmax(-1) != t).float().mean()  # noqa: E731
        self.task = ModuleTask("classes", torch.nn.Linear(2, 2), ce, (x[:400], y[:400]), (x[400:], y[400:]),
                               eval_fn=err, level="test error", batch_size=batch_size, eval_chunk=64)


def test_minibatches_are_shuffled_epochs_and_training_reproduces_from_its_seed():
    task = Classes(batch_size=32).task
    stream = task.minibatches(7)
    epoch = torch.cat([next(stream) for _ in range(400 // 32)])
    assert len(set(epoch.tolist())) == len(epoch) == 384          # each example at most once per epoch
    second = torch.cat([next(stream) for _ in range(400 // 32)])
    assert not torch.equal(epoch, second)                          # a fresh shuffle each epoch
    again = task.minibatches(7)
    assert torch.equal(torch.cat([next(again) for _ in range(400 // 32)]), epoch)
    assert Classes(batch_size=None).task.minibatches(0) is None     # full batch
    theta = task.init(3, torch.Generator().manual_seed(0))
    runs = [train_to(task, theta, 0.03, max_steps=2000, lr=0.05, method=m, check_every=5, schedule=sch, seed=sd)
            for m, sch, sd in (("adam", "plateau", 1), ("adam", "plateau", 1), ("adam", "plateau", 2),
                               ("sgd", "cosine", 1))]
    for r in runs:
        assert bool(r.reached.all()) and float(r.loss.max()) <= 0.03, r.loss
        # the level is the held-out error, measured in chunks: the same as measured whole
        task.eval_chunk = None
        whole = task.loss_eval(r.theta)
        task.eval_chunk = 64
        torch.testing.assert_close(task.loss_eval(r.theta), whole)
    torch.testing.assert_close(runs[0].theta, runs[1].theta, rtol=0, atol=0)   # same seed: the same beads
    assert not torch.equal(runs[0].theta, runs[2].theta)                       # another seed: other batches


def test_cosine_schedule_anneals_to_the_floor():
    from dss.optim import _cosine

    k = torch.tensor([0.0, 50.0, 100.0, 200.0])
    torch.testing.assert_close(_cosine(0.1, 0.001, k, 100), torch.tensor([0.1, 0.0505, 0.001, 0.001]))


def test_cifar10_task_from_synthetic_batches_is_the_zoo_model_and_its_test_error(tmp_path):
    """The CIFAR-10 task on files in the standard python-batch format: the zoo's cuda-convnet model (width-scaled),
    all training images of the five batches, the level is the test error of the plain module, and minibatch
    training reaches a level."""
    from image_files import write_cifar

    data = write_cifar(tmp_path, n=40)
    task = make_task("cifar10", data_dir=str(data), width=0.25, batch_size=32)
    assert task.p == FlatLayout.of(build_model("cifar10-convnet", width=0.25)).p
    assert task.n_train == 200 and task.n_eval == 40 and task.level == "test error"
    assert task.config()["model"] == "cifar10-convnet" and task.minibatches(0) is not None
    theta = task.init(2, torch.Generator().manual_seed(0))
    net = build_model("cifar10-convnet", width=0.25)
    x, y = task._eval
    errors = []
    for row in theta:
        torch.nn.utils.vector_to_parameters(row, net.parameters())
        with torch.no_grad():
            errors.append((net(x).argmax(-1) != y).float().mean())
    torch.testing.assert_close(task.loss_eval(theta), torch.stack(errors))
    # one model goes through the module's own kernels, several through vmap: the same numbers
    torch.testing.assert_close(task.loss_train(theta[1:]), task.loss_train(theta)[1:], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(task.loss_eval(theta[1:]), task.loss_eval(theta)[1:])
    s = DSSSettings(l0=0.2, lr=0.003, check_every=5)
    models, reached, _, _ = train_models(task, 2, s.alpha * s.l0, torch.Generator().manual_seed(0), s, 3000, 1)
    assert bool(reached.all()) and float(task.loss_eval(models).max()) <= 0.19


def test_a_data_folder_without_the_files_is_one_sentence(tmp_path, capsys):
    empty = tmp_path / "data"
    (empty / "mnist").mkdir(parents=True)
    (empty / "ptb").mkdir()
    for task in ("mnist", "cifar10", "ptb"):
        with pytest.raises(DataError):
            make_task(task, data_dir=str(empty))
        code, _, err = run_cli(capsys, "dss", "sweep", "--task", task, "--data-dir", str(empty), "--l0", "0.5",
                               "--device", "cpu", "--out", str(tmp_path / task))
        assert_one_sentence_error(code, err)
        assert "--data-dir" in err


def test_a_level_the_endpoints_cannot_reach_is_one_sentence(tmp_path, capsys):
    code, _, err = run_cli(capsys, "dss", "connect", "--task", "cubic", "--l0", "1e-9", "--endpoint-steps", "20",
                           "--out", str(tmp_path / "c.h5"))
    assert_one_sentence_error(code, err)
    assert "--endpoint-steps" in err and not (tmp_path / "c.h5").exists()
    code, _, err = run_cli(capsys, "dss", "sweep", "--task", "cubic", "--l0", "1e-9", "--endpoint-steps", "20",
                           "--pairs", "1", "--out", str(tmp_path / "s"))
    assert_one_sentence_error(code, err)
    assert "--endpoint-steps" in err


def _rounds(path):
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return int(f.attrs["rounds"])
    except (OSError, KeyError):  # caught between a file and its replacement
        return 0


def test_sweep_killed_minus_9_resumes_to_the_same_sweep(tmp_path, capsys):
    """SIGKILL while the second level's strings grow: `dss sweep --resume` takes up the stored models and strings
    and ends with the sweep of an uninterrupted run, bead for bead."""
    args = [sys.executable, "-m", "landscape_cli", "-q", "dss", "sweep", "--task", "quadratic", "--l0", "0.125,0.025",
            "--pairs", "2", "--seed", "3"]
    ref = tmp_path / "ref"
    subprocess.run([*args, "--out", str(ref)], check=True, capture_output=True, timeout=600)
    run = tmp_path / "run"
    proc = subprocess.Popen([*args, "--out", str(run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed_at = None
    deadline = time.monotonic() + 600  # only stops a hung test
    while proc.poll() is None:  # waits on the files, not on the clock
        assert time.monotonic() < deadline, "the second level's strings never started"
        strings = sorted((run / "strings").glob("l0_0.025_pair_*.h5")) if (run / "strings").is_dir() else []
        if strings and _rounds(strings[0]) >= 1:
            os.kill(proc.pid, signal.SIGKILL)
            killed_at = _rounds(strings[0])
            break
        time.sleep(0.005)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL and killed_at is not None, "the sweep should have been killed mid-level"
    assert (run / "models" / "l0_0.025.npz").is_file() and not (run / "sweep.json").exists()
    code, _, err = run_cli(capsys, "dss", "sweep", "--resume", str(run), "--alpha", "0.5")   # flags must agree
    assert_one_sentence_error(code, err)
    code, text, err = run_cli(capsys, "dss", "sweep", "--resume", str(run))
    assert code == 0, err
    got, want = (json.loads((d / "sweep.json").read_text()) for d in (run, ref))
    keys = ("l0", "pairs", "trained_pairs", "connected", "straight_found", "length_mean", "beads_mean",
            "grad_steps_mean", "failures")
    assert [{k: r[k] for k in keys} for r in got["levels"]] == [{k: r[k] for k in keys} for r in want["levels"]]
    for path in sorted((ref / "strings").glob("*.h5")):
        a, b = load_string(path)[0], load_string(run / "strings" / path.name)[0]
        assert b.finished and a.order == b.order and a.rounds == b.rounds
        np.testing.assert_array_equal(np.stack(a.beads), np.stack(b.beads))
