import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clirun import hamq_here
from hamqcore.study import experiments
from hamqcore.study.train import TrainConfig, load_checkpoint, train


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HAMQCORE_CACHE", str(tmp_path / "cache"))


def hamq(*args, check=True, cwd=None):
    # Run outside the source tree, with the hamqcore under test first on the path (installed or not).
    import hamqcore

    env = dict(os.environ)
    here = str(Path(hamqcore.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([here, *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.run([sys.executable, "-m", "hamqcore.study.cli", *args], capture_output=True, text=True,
                          cwd=cwd or Path(here).parent, env=env)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.mark.parametrize("args, message", [
    (["train", "--model", "vgg"], "invalid choice: 'vgg'"),
    (["train", "--w-bits", "17"], "bits must be an integer in 2..16, got 17"),
    (["energy", "{tmp}/nope.pt", "--set", "rows=200000"], "rows"),
    (["energy", "{tmp}/nope.pt", "--preset", "spice"], "--preset must be one of"),
    (["energy", "{tmp}/nope.pt", "--accuracy", "-3"], "argument --accuracy: expected an integer >= 0, got '-3'"),
    (["train", "--lam", "-1"], "lam must be a finite number >= 0, got -1.0"),
    (["train", "--weight-mode", "maxx"], "invalid choice: 'maxx'"),
    (["train", "--seed", "-2"], "seed must be an integer in 0..2147483647, got -2"),
    (["train", "--data", "mnist5k:extra"], "mnist5k is an offline data set and takes no folder"),
    (["train", "--weighting", "crossbar", "--crossbar", '{"preset": "neurosim-1.3"}'],
     "encoding must be 'offset', the code the 'offset' mapping stores, got 'differential'"),
    (["train", "--crossbar", "[1]"], "argument --crossbar: expected a JSON object"),
    (["train", "--data", "imagenet", "--out", "{tmp}/x"], "unknown data set 'imagenet'"),
    (["train", "--data", "cifar10:{tmp}/nothing", "--out", "{tmp}/x"], "nothing is not a folder"),
    (["train", "--data", "cifar10:{tmp}", "--out", "{tmp}/x"], "missing data_batch_1"),
    (["energy", "{tmp}/nope.pt"], "no checkpoint at"),
    (["sweep", "--lams", "0,abc", "--out", "{tmp}/s"], "--lams must be comma-separated numbers"),
])
def test_errors_are_one_line_and_exit_2(tmp_path, args, message):
    proc = hamq_here(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_errors_exit_2_from_the_interpreter(tmp_path):
    # the same path through a real `python -m` (what the console script runs): argparse's and hamq's own
    for args, message in ((["train", "--w-bits", "17"], "bits must be an integer in 2..16, got 17"),
                          (["energy", str(tmp_path / "nope.pt")], "no checkpoint at")):
        proc = hamq(*args, check=False)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
        assert sum("error:" in line for line in proc.stderr.splitlines()) == 1    # one error line, no trace


def test_help():
    top = hamq("--help").stdout      # through the interpreter once, then in this process
    assert "demo" in top and "``" not in top and ":mod:" not in top and ":func:" not in top
    assert "usage: hamq" in hamq_here("--help").stdout   # (its width follows the terminal: not compared)
    for command in ("demo", "train", "energy", "round", "sweep"):
        proc = hamq_here(command, "--help")
        text = proc.stdout
        assert proc.returncode == 0 and "usage: hamq " + command in text
        assert "``" not in text and ":func:" not in text
    train = hamq_here("train", "--help").stdout
    # every TrainConfig field is a flag, with its default shown
    from hamqcore.study.train import TrainConfig

    for f in dataclasses.fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in train, f.name
    assert "(default: lsq)" in train and "(default: 0.05)" in train
    sweep = hamq_here("sweep", "--help").stdout
    assert "--lams" in sweep and not re.search(r"--lam\b(?!s)", sweep)
    assert "invalid choice" in hamq_here("bench").stderr  # the benchmarks run from the checkout


def test_cli_defaults_are_pinned():
    """The documented defaults of every command (README "Command line")."""
    from hamqcore.study import cli
    from hamqcore.study.cli import build_parser

    ap = build_parser()
    rnd = ap.parse_args(["round", "ck.pt"])
    assert (rnd.lam, rnd.calib, rnd.radius, rnd.images, rnd.preset, rnd.out) == (
        "0.003,0.01,0.03", 256, 8, 64, "neurosim-1.3", "hamq_round")
    en = ap.parse_args(["energy", "ck.pt"])
    assert (en.images, en.accuracy, en.preset, en.out) == (32, 0, "neurosim-1.3", None)
    demo = ap.parse_args(["demo"])
    assert (demo.seeds, demo.jobs, demo.out, demo.quick) == (1, cli.default_jobs(), "hamq_out", False)
    assert 1 <= cli.default_jobs() <= 8
    sw = ap.parse_args(["sweep"])
    assert (sw.lams, sw.images, sw.out) == ("0,0.3,1,3", 32, "hamq_sweep")
    tr = ap.parse_args(["train"])
    assert (tr.model, tr.data, tr.w_bits, tr.epochs, tr.lr, tr.weight_mode, tr.weighting, tr.crossbar, tr.out) == (
        "resnet18", "mnist5k", 8, 10, 2e-3, "lsq", "energy", None, "hamq_train")


def test_train_then_energy_round_trip(tmp_path):
    out = tmp_path / "run"
    hamq("train", "--model", "resnet18", "--width", "4", "--data", "digits", "--epochs", "2", "--lam", "0.5",
         "--out", str(out), "--no-progress")
    for name in ("checkpoint.pt", "metrics.csv", "result.json"):
        assert (out / name).exists()
    assert len((out / "metrics.csv").read_text().splitlines()) == 3
    proc = hamq("energy", str(out / "checkpoint.pt"), "--images", "4", "--set", "adc_bits=6", "--preset", "mnsim-2.0",
                "--accuracy", "70")
    assert "total per inference" in proc.stdout
    acc = json.loads((out / "accuracy.json").read_text())
    assert acc["inputs"] == 70 and 0 <= acc["crossbar"] <= 1 and acc["config"].startswith("mnsim-2.0")
    assert f"digital {100 * acc['digital']:.2f} %" in proc.stdout
    report = json.loads((out / "energy.json").read_text())
    assert report["config"]["adc_bits"] == 6 and report["config"]["rows"] == 256
    assert report["total_energy_j"] > 0 and (out / "energy.png").exists() and (out / "energy.csv").exists()
    model, cfg, _ = load_checkpoint(out)
    assert cfg.lam == 0.5 and cfg.width == 4
    bad = hamq_here("energy", str(out / "checkpoint.pt"), "--set", "rows=abc")
    assert bad.returncode == 2 and "--set rows: expected int" in bad.stderr
    proc = hamq_here("energy", str(out / "checkpoint.pt"), "--images", "2", "--scope", "chip", "--out", str(tmp_path / "chip"))
    assert proc.returncode == 0, proc.stderr
    chip = json.loads((tmp_path / "chip" / "energy.json").read_text())
    assert "chip scope: NeuroSim's 512x512 tiles" in proc.stdout and chip["scope"] == "chip"
    assert chip["energy_j"]["global_htree"] > 0 and chip["floorplan"]["pe"] == 256
    assert (tmp_path / "chip" / "energy.png").stat().st_size > 5000
    bad = hamq_here("energy", str(out / "checkpoint.pt"), "--scope", "chip", "--preset", "mnsim-2.0")
    assert bad.returncode == 2 and "model='neurosim-1.3'" in bad.stderr
    # NeuroSim V1.4's default (SRAM) subarray: its components, its refusals as exit 2
    assert hamq_here("energy", str(out / "checkpoint.pt"), "--images", "2", "--preset", "neurosim-1.4",
                     "--out", str(tmp_path / "v14")).returncode == 0
    v14 = json.loads((tmp_path / "v14" / "energy.json").read_text())
    assert v14["config"]["model"] == "neurosim-1.4" and v14["config"]["cell_bits"] == 1
    assert set(v14["energy_j"]) == {"adc", "array", "switch_matrix", "mux", "shift_add", "gain", "select"}
    bad = hamq_here("energy", str(out / "checkpoint.pt"), "--preset", "neurosim-1.4", "--set", "cell_bits=2")
    assert bad.returncode == 2 and "cell_bits=2 is not available in model 'neurosim-1.4'" in bad.stderr
    # gradient-free rounding of the trained checkpoint: a new checkpoint per lam, the input untouched
    before = (out / "checkpoint.pt").read_bytes()
    rnd = tmp_path / "rounded"
    proc = hamq("round", str(out), "--lam", "0,0.05", "--calib", "32", "--images", "4", "--radius", "4",
                "--out", str(rnd), "--compare", str(tmp_path))
    report = json.loads((rnd / "round.json").read_text())
    assert [r["lam"] for r in report["rounding"]] == [0.0, 0.05]
    assert report["rounding"][1]["on_fraction"] < report["input"]["on_fraction"]
    assert any(r["label"] == "HamQ training" for r in report["trained"])
    model2, cfg2, _ = load_checkpoint(rnd / "lam_0.05")
    assert cfg2 == cfg and (rnd / "round_pareto.png").stat().st_size > 5000 and (rnd / "round.csv").exists()
    assert (out / "checkpoint.pt").read_bytes() == before
    same = hamq_here("round", str(out / "checkpoint.pt"), "--out", str(out))
    assert same.returncode == 2 and "never overwritten" in same.stderr
    assert (out / "checkpoint.pt").read_bytes() == before


def test_resume_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    cfg = TrainConfig(model="resnet18", width=4, data="digits", epochs=3, lam=0.3, warmup_epochs=1, ramp_epochs=1)
    full = train(cfg, tmp_path / "full", progress=False, log=lambda s: None)
    original = TrainConfig.lam_at

    def interrupt(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(TrainConfig, "lam_at", interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", progress=False, log=lambda s: None)
    monkeypatch.setattr(TrainConfig, "lam_at", original)
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)["epoch"] == 2  # usable checkpoint
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False, log=lambda s: None)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed.test_accuracy == full.test_accuracy
    with pytest.raises(ValueError, match="different settings"):
        train(TrainConfig(**{**cfg.__dict__, "lam": 0.9}), tmp_path / "cut", resume=True, progress=False)


def test_energy_of_a_model_of_ones_own(tmp_path, monkeypatch):
    """hamq energy --factory MODULE:FUNCTION --state-dict FILE --data SPEC (issue 22)."""
    import torch.nn as nn

    (tmp_path / "mymodels.py").write_text(
        "import torch.nn as nn\n"
        "def tiny():\n"
        "    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))\n")
    torch.manual_seed(0)
    tiny = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    torch.save(tiny.state_dict(), tmp_path / "w.pt")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    proc = hamq("energy", "--factory", "mymodels:tiny", "--state-dict", str(tmp_path / "w.pt"), "--data", "digits",
                "--images", "4", "--out", str(tmp_path / "e"))
    assert "total per inference" in proc.stdout
    report = json.loads((tmp_path / "e" / "energy.json").read_text())
    assert [l["name"] for l in report["layers"]] == ["0", "3"] and report["w_bits"] == 8
    q = hamq("energy", "--factory", "mymodels:tiny", "--quantize", "6,6", "--data", "digits", "--images", "4",
             "--out", str(tmp_path / "e3"))
    assert "total per inference" in q.stdout
    monkeypatch.syspath_prepend(str(tmp_path))     # the refusals in this process: mymodels importable here too
    for args, message in [
        (["--factory", "mymodels:tiny", "--data", "digits", "--state-dict", str(tmp_path / "mymodels.py")], "--state-dict"),
        (["--factory", "mymodels", "--data", "digits"], "--factory must be package.module:function"),
        (["--factory", "mymodels:nope", "--data", "digits"], "has no attribute 'nope'"),
        (["--factory", "mymodels:tiny"], "--factory needs --data SPEC"),
        ([], "--factory MODULE:FUNCTION / --exported PROGRAM.pt2 with --data SPEC"),
    ]:
        bad = hamq_here("energy", *args, "--out", str(tmp_path / "bad"))
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr, (args, bad.stderr)


def test_round_a_model_of_ones_own(tmp_path, monkeypatch):
    """hamq round --factory MODULE:FUNCTION --quantize W,A --data SPEC (issue 22): HW-aware rounding of a
    model that is not a hamq checkpoint; one state_dict per lam that loads back into the model."""
    (tmp_path / "mymodels2.py").write_text(
        "import torch.nn as nn\n"
        "def tiny():\n"
        "    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    out = tmp_path / "r"
    proc = hamq("round", "--factory", "mymodels2:tiny", "--quantize", "6,6", "--data", "digits", "--lam", "0,0.1",
                "--calib", "32", "--images", "4", "--out", str(out))
    rec = json.loads((out / "round.json").read_text())
    assert [r["lam"] for r in rec["rounding"]] == [0.0, 0.1] and rec["data"] == "digits"
    assert rec["rounding"][0]["energy_pct"] == pytest.approx(0.0, abs=1e-9)       # lam 0 keeps the model
    assert rec["rounding"][1]["on_fraction"] <= rec["input"]["on_fraction"] + 1e-12
    state = torch.load(out / "lam_0.1" / "state_dict.pt", weights_only=True)
    assert any(k.endswith("weight") for k in state) and "state_dict.pt" in proc.stdout
    bad = hamq_here("round", "--factory", "mymodels2:tiny", "--quantize", "6,6", "--data", "digits", "ck.pt",
                    "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "not both" in bad.stderr
    none = hamq_here("round", "--out", str(tmp_path / "bad2"))
    assert none.returncode == 2 and "--factory MODULE:FUNCTION / --exported PROGRAM.pt2" in none.stderr


def test_energy_and_rounding_of_an_exported_program(tmp_path):
    """hamq energy / round --exported PROGRAM.pt2 --data SPEC (issue 22): a torch.export program, its
    Linear/Conv calls mapped again (hamqcore.layers.from_exported), reads as the model it was exported
    from: the same layers, names and energy."""
    import torch.nn as nn

    import numpy as np

    from hamqcore.energy import estimate_energy
    from hamqcore.layers import from_exported
    from hamqcore.study import data as data_mod

    torch.manual_seed(0)
    tiny = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)).eval()
    program = torch.export.export(tiny, (torch.randn(2, 1, 8, 8),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, tmp_path / "tiny.pt2")
    proc = hamq("energy", "--exported", str(tmp_path / "tiny.pt2"), "--data", "digits", "--images", "4",
                "--out", str(tmp_path / "e"))
    assert "total per inference" in proc.stdout
    report = json.loads((tmp_path / "e" / "energy.json").read_text())
    x = torch.from_numpy(np.ascontiguousarray(data_mod.load("digits").test.x[:4]))
    want = estimate_energy(tiny, x)
    assert [l["name"] for l in report["layers"]] == ["0", "3"]
    assert report["total_energy_j"] == pytest.approx(want.total_energy, rel=1e-12, abs=0)
    mapped = from_exported(program)
    assert [type(m) for m in (mapped.get_submodule("0"), mapped.get_submodule("3"))] == [nn.Conv2d, nn.Linear]
    with torch.no_grad():
        assert torch.equal(mapped(x), program.module()(x))
    with pytest.raises(NotImplementedError, match="fixed its mode at export"):
        mapped.train()
    with pytest.raises(TypeError, match="torch.export.ExportedProgram"):
        from_exported(tiny)
    out = tmp_path / "r"
    hamq("round", "--exported", str(tmp_path / "tiny.pt2"), "--quantize", "6,6", "--data", "digits", "--lam", "0.1",
         "--calib", "32", "--images", "4", "--out", str(out))
    assert json.loads((out / "round.json").read_text())["rounding"][0]["lam"] == 0.1
    for args, message in [
        (["--exported", str(tmp_path / "tiny.pt2")], "--exported needs --data SPEC"),
        (["--exported", str(tmp_path / "tiny.pt2"), "--factory", "m:f", "--data", "digits"], "without --factory"),
        (["--exported", str(tmp_path / "missing.pt2"), "--data", "digits"], "missing.pt2: no such file"),
    ]:
        bad = hamq_here("energy", *args, "--out", str(tmp_path / "bad"))
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr, (args, bad.stderr)


def test_demo_runs_the_papers_tasks_from_their_folders(tmp_path, monkeypatch, capsys):
    """hamq demo --cifar10 ROOT --speech-commands ROOT --device D: the paper's tasks replace the demo's
    data and scale for the protocol (settings.PAPER_TASKS); --experiments picks which run."""
    from hamqcore.study import cli

    seen = {}

    def fake_demo(out, **kw):
        seen.update(kw)
        return {"experiments": {}, "seeds": [0], "seconds": 0.0}

    monkeypatch.setattr(experiments, "demo", fake_demo)
    assert cli.main(["demo", "--cifar10", "/data/c10", "--speech-commands", "/data/sc", "--experiments", "ds_cnn",
                     "--out", str(tmp_path / "o")]) == 0
    assert seen["experiments"] == ("ds_cnn",)
    assert seen["tasks"]["resnet18"]["data"] == "cifar10:/data/c10" and seen["tasks"]["resnet18"]["width"] == 64
    assert seen["tasks"]["ds_cnn"]["data"] == "speech_commands:/data/sc" and seen["tasks"]["ds_cnn"]["device"] == "cpu"
    assert cli.main(["demo", "--experiments", "mnist", "--out", str(tmp_path / "p")]) == 2
    assert "--experiments must be" in capsys.readouterr().err


def test_set_parses_every_field_kind():
    """--set: ints, floats, booleans, "auto" bits and the optional retention target (a number or none)."""
    from hamqcore.study.cli import CliError, crossbar_config

    cfg = crossbar_config("mnsim-2.0", ["rows=64", "skip_empty=true", "readout=conductance", "retention_t=1e4",
                                        "retention_v=0.02", "retention_target=0.5", "adc_bits=7"])
    assert (cfg.rows, cfg.skip_empty, cfg.retention_target, cfg.adc_bits) == (64, True, 0.5, 7)
    assert crossbar_config("neurosim-1.3", ["adc_bits=auto"]).adc_resolution == "per_column"
    assert crossbar_config("neurosim-1.3", ["retention_target=none"]).retention_target is None
    with pytest.raises(CliError, match="--set retention_target: expected a number or none, got 'half'"):
        crossbar_config("neurosim-1.3", ["retention_target=half"])
