"""Data-parallel training on torch.distributed: two CPU processes under gloo (torchrun) against one
process with the same global batch, and resume (issue 21)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hamqcore

ARGS = ["--model", "resnet18", "--width", "2", "--data", "digits", "--warmup-epochs", "0", "--ramp-epochs", "0",
        "--lam", "0.5", "--threads", "1", "--no-progress"]


def _env(tmp_path):
    env = dict(os.environ, HAMQCORE_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(hamqcore.__file__).resolve().parents[1]),
                                         *filter(None, [env.get("PYTHONPATH")])])
    return env


def _train(tmp_path, out, ranks, *extra):
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks)]
                if ranks > 1 else [sys.executable])
    proc = subprocess.run([*launcher, "-m", "hamqcore.study.cli", "train", *ARGS, "--out", str(out), *extra],
                          capture_output=True, text=True, env=_env(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return torch.load(out / "checkpoint.pt", weights_only=True), proc.stdout


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")
def test_two_gloo_processes_train_as_one_with_the_same_global_batch(tmp_path):
    # one optimizer step on a global batch of 64 (two ranks of 32 each): the same update as one process,
    # to float tolerance (quantized training is discontinuous, so longer runs drift apart by rounding)
    one, _ = _train(tmp_path, tmp_path / "one", 1, "--epochs", "1", "--train-subset", "64", "--batch-size", "64")
    two, out = _train(tmp_path, tmp_path / "two", 2, "--epochs", "1", "--train-subset", "64", "--batch-size", "64")
    assert out.count("test accuracy") == 1                   # rank 0 alone reports and writes
    for key, a in one["model"].items():
        b = two["model"][key]
        if a.is_floating_point():
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=key)
    assert two["history"][0]["loss"] == pytest.approx(one["history"][0]["loss"], rel=1e-5, abs=0)
    assert two["history"][0]["train_acc"] == one["history"][0]["train_acc"]


CUT = """
import sys
from hamqcore.study import cli
from hamqcore.study.train import TrainConfig

original = TrainConfig.lam_at


def interrupt(self, epoch):       # Ctrl-C on every rank as the second epoch starts
    if epoch == 1:
        raise KeyboardInterrupt
    return original(self, epoch)


TrainConfig.lam_at = interrupt
sys.exit(0 if cli.main(sys.argv[1:]) == 130 else 1)
"""


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")
def test_a_distributed_run_resumes_exactly(tmp_path):
    common = ["--epochs", "2", "--train-subset", "128", "--batch-size", "32"]
    full, _ = _train(tmp_path, tmp_path / "full", 2, *common)
    (tmp_path / "cut.py").write_text(CUT)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(tmp_path / "cut.py"), "train", *ARGS, *common, "--out", str(tmp_path / "cut")],
                          capture_output=True, text=True, env=_env(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["epoch"] == 1   # written by rank 0
    resumed, _ = _train(tmp_path, tmp_path / "cut", 2, *common, "--resume")
    assert resumed["epoch"] == 2
    for key, a in full["model"].items():
        assert torch.equal(resumed["model"][key], a), key


def test_the_grid_in_worker_processes_gives_the_serial_results(tmp_path, monkeypatch):
    """experiments.run_grid (hamq demo/sweep --jobs N): two worker processes, the same rows as serial."""
    from hamqcore.study import experiments

    monkeypatch.setenv("HAMQCORE_CACHE", str(tmp_path / "cache"))
    base = dict(model="resnet18", width=2, data="digits", epochs=1, warmup_epochs=0, ramp_epochs=0, threads=1,
                train_subset=256)
    serial = experiments.sweep(base, [0.0, 1.0], tmp_path / "serial", images=4, progress=False, log=lambda s: None)
    parallel = experiments.sweep(base, [0.0, 1.0], tmp_path / "jobs", images=4, progress=False, log=lambda s: None,
                                 jobs=2)
    assert serial == parallel


GRID = """
import json, os
from hamqcore.quant import data_parallel
from hamqcore.study import distributed, experiments


def job(j):
    return {"v": j["value"] ** 2, "pid": os.getpid(), "world": os.environ["WORLD_SIZE"], "dp": data_parallel()}


g = distributed.grid()
jobs = [{"name": "t", "seed": 0, "method": "m", "value": v} for v in range(7)]
first = experiments._pool_map(job, jobs, 1, lambda _: None, "a", g)
second = experiments._pool_map(job, jobs[:1], 1, lambda _: None, "b", g)     # fewer jobs than ranks
if g.main:
    print("RESULT", json.dumps({"first": first, "second": second, "size": g.size, "rank": g.rank}))
g.close()
"""


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")
def test_torchrun_ranks_share_a_grid_of_independent_runs(tmp_path):
    # the demo's points under torchrun: rank r runs points r, r + 2, ...; every rank gets every result,
    # in order; each run is a world of one (no process group: it trains as a single process would)
    script = tmp_path / "grid.py"
    script.write_text(GRID)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(script)], capture_output=True, text=True, env=_env(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    import json
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert len(line) == 1                                    # rank 0 alone reports
    res = json.loads(line[0][len("RESULT "):])
    assert res["size"] == 2 and res["rank"] == 0
    first = res["first"]
    assert [r["v"] for r in first] == [v * v for v in range(7)]
    pids = [r["pid"] for r in first]
    assert len(set(pids)) == 2 and all(pids[i] == pids[i % 2] for i in range(7))   # two ranks, i % 2
    assert all(r["world"] == "1" and r["dp"] is False for r in first + res["second"])
    assert [r["v"] for r in res["second"]] == [0]
