"""The study's protocol (hamqcore.study.experiments.demo, hamqcore.study.protocol), run end to end at
a tiny scale: its invariants, whatever a few training steps learn."""
import json
from pathlib import Path

import numpy as np
import pytest

from hamqcore.study import experiments, protocol
from hamqcore.study import train as train_mod
from hamqcore.study.data.containers import DataSet, Split

ROOT = Path(__file__).resolve().parents[1]


def _tiny(monkeypatch):
    monkeypatch.setattr(experiments, "PROTOCOL_SCALE_QUICK",
                        {"ds_cnn": dict(epochs=1, quick_data=True, warmup_epochs=0, ramp_epochs=1)})
    monkeypatch.setattr(experiments, "METHODS_QUICK", {"ds_cnn": {
        "hamq_hw": ("lam", (1.0,)), "hamq_priced": ("lam", (1.0,)), "bits": ("w_bits", (4,)),
        "prune": ("prune", (0.5,)), "round": ("lam", (0.01,)),
        "hamq_hw_round": ("lam", (1.0,)), "hamq_priced_round": ("lam", (1.0,))}})
    monkeypatch.setattr(experiments, "PROTOCOL_QUICK", dict(experiments.PROTOCOL_QUICK, validation_inputs=24,
                                                            calibration_inputs=8, test_inputs=24, energy_inputs=2))


def test_the_protocol_seals_the_test_split_and_reproduces(tmp_path, monkeypatch):
    _tiny(monkeypatch)
    calls = []
    real_train, real_val, real_test = train_mod.train, experiments.validation_point, experiments.test_point

    def train(cfg, out=None, dataset=None, **kw):
        assert dataset is not None and len(dataset.test) == 0      # training never receives the test split
        assert len(dataset.val) > 0
        calls.append("train")
        return real_train(cfg, out, dataset=dataset, **kw)

    def val(*a, **kw):
        calls.append("validation")
        return real_val(*a, **kw)

    def test(*a, **kw):
        calls.append("test")
        return real_test(*a, **kw)

    monkeypatch.setattr(train_mod, "train", train)
    monkeypatch.setattr(experiments, "validation_point", val)
    monkeypatch.setattr(experiments, "test_point", test)
    first = experiments.demo(tmp_path / "a", quick=True, experiments=("ds_cnn",), log=lambda _: None)
    # the test split is read only after every choice, once per chosen point
    assert "test" in calls and "test" not in calls[:calls.index("test")] and "validation" not in \
        calls[calls.index("test"):] and "train" not in calls[calls.index("test"):]
    e = first["experiments"]["ds_cnn"]
    picked = {(c["checkpoint"], json.dumps(c["overrides"], sort_keys=True, default=str))
              for c in e["chosen"][0].values() if c is not None}
    assert calls.count("test") == len(picked)
    assert "chosen_charged" not in e     # protocol v2: the whole space is charged, one selection
    # the same search space for every method: every model was tried on the same configurations
    spaces = {json.dumps(sorted(json.dumps(p["overrides"], sort_keys=True) for p in r["validation"]["points"]))
              for runs in e["runs"].values() for pts in runs.values() for r in pts}
    assert len(spaces) == 1
    assert set(e["runs"][0]) == {"baseline", "hamq_hw", "hamq_priced", "bits", "prune", "round", "hamq_hw_round",
                                 "hamq_priced_round"}
    # rounding on top of HamQ starts from that HamQ's model of the same lam, rounded at the declared lam
    import torch
    for top_name, src_name in experiments.ON_TOP.items():
        (top,), (src,) = e["runs"][0][top_name], e["runs"][0][src_name]
        assert top["value"] == src["value"] == 1.0
        ck = torch.load(top["checkpoint"], weights_only=False)
        assert ck["rounding"] == {"lam": experiments.ROUND["on_hamq_lam"], "source": src["checkpoint"]}
    rec = json.loads((tmp_path / "a" / "results.json").read_text())
    for key in ("validation_fraction", "split_seed", "primary", "space", "secondary", "budget_pt", "methods"):
        assert key in rec["protocol"]
    assert rec["experiments"]["ds_cnn"]["splits"]["test"] > 0 and rec["seeds"] == [0]
    md = (tmp_path / "a" / "results.md").read_text()      # the tables, from results.json alone
    assert md == experiments.markdown_report(rec)
    for m in e["runs"][0]:
        assert md.count(f"| {m} | ") == 1, m
    for m, c in e["chosen"][0].items():       # a chosen point met the budget on the validation split
        if c is not None:
            assert c["validation_accuracy"] >= e["reference"][0] + e["budget_pt"] / 100 - 1e-12
            assert 0 <= c["test"]["crossbar_accuracy"] <= 1 and c["test"]["energy_j"]["primary"] > 0

    # the fault-robustness example (README "Variation and faults") on this run: every chosen model under
    # each condition; stuck ON cells only add current, stuck OFF cells only take it away
    import importlib.util

    spec = importlib.util.spec_from_file_location("fault_robustness", ROOT / "examples" / "fault_robustness.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    monkeypatch.setattr(example, "CALIBRATION_INPUTS", 8)    # the run's own scale (its protocol calibrates on 8)
    monkeypatch.setattr(example, "ENERGY_INPUTS", 2)
    table = example.measure(tmp_path / "a", "ds_cnn", "0", inputs=8, log=lambda _: None, methods=("baseline",),
                            conditions=("nominal", "stuck_on=1%", "stuck_off=1%"))
    (e0, a0), (e_on, _), (e_off, _) = table["baseline"].values()
    assert list(table) == ["baseline"] and e_off < e0 < e_on and 0 <= a0 <= 1

    # the chip-scope example (README "Chip scope") on this run: every model of the seed at both scopes;
    # a chosen point's subarray energy is its results.json test energy, the chip adds the same energy to
    # every model of the same widths (it sees shapes only)
    spec = importlib.util.spec_from_file_location("chip_scope", ROOT / "examples" / "chip_scope.py")
    chip_example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(chip_example)
    scopes, chosen, inputs = chip_example.measure(tmp_path / "a", "ds_cnn", "0", log=lambda _: None)
    assert "baseline" in scopes and all(scopes[name][0] == want for name, want in chosen.items())
    assert inputs == json.loads((tmp_path / "a" / "results.json").read_text())["protocol"]["energy_inputs"]
    extra = {round(c - s_, 18) for name, (s_, c, _) in scopes.items() if not name.startswith("bits")}
    assert len(extra) == 1 and extra.pop() > 0

    # the NeuroSim V1.4 example (README "neurosim-1.4") on this run: every model under both presets; V1.4's
    # energy of a model does not change with its weights (the floor, every cell at its lowest, costs the same)
    spec = importlib.util.spec_from_file_location("neurosim14", ROOT / "examples" / "neurosim14.py")
    ns14 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ns14)
    table14, inputs14 = ns14.measure(tmp_path / "a", "ds_cnn", "0", log=lambda _: None)
    assert set(table14) == set(scopes) and inputs14 == inputs
    assert all(e > 0 and 0 < on < 1 for row in table14.values() for e, on in row.values())
    from hamqcore.crossbar import PRESETS
    from hamqcore.energy import estimate_energy
    models, x, _ = experiments.seed_models(tmp_path / "a", "ds_cnn", "0")
    (name, baseline, _) = models[0]
    assert name == "baseline" and x.shape[0] == inputs
    assert estimate_energy(baseline, x, PRESETS["neurosim-1.4"], floor=True).total_energy == table14["baseline"][
        "neurosim-1.4"][0]

    # again with the test labels shuffled: every choice is the same (made without the test split) and
    # every validation number reproduces (the seed fixes the run)
    from hamqcore.study import data as data_mod
    load = data_mod.load

    def shuffled(spec, quick=False, seed=0):
        ds = load(spec, quick=quick, seed=seed)
        y = np.random.default_rng(5).permutation(ds.test.y)
        return DataSet(ds.name, ds.classes, ds.train, Split(ds.test.x, y), ds.val, ds.augment, ds.info)

    monkeypatch.setattr(data_mod, "load", shuffled)
    second = experiments.demo(tmp_path / "b", quick=True, experiments=("ds_cnn",), log=lambda _: None)
    e2 = second["experiments"]["ds_cnn"]
    assert e2["reference"] == e["reference"]
    for m in e["runs"][0]:
        a, b = e["runs"][0][m], e2["runs"][0][m]
        assert [r["validation"] for r in a] == [r["validation"] for r in b], m
        assert [r["validation_accuracy"] for r in a] == [r["validation_accuracy"] for r in b], m
    strip = lambda c: None if c is None else {k: v for k, v in c.items() if k not in ("test", "checkpoint")}  # noqa: E731
    for key in ("chosen",):
        assert {m: strip(c) for m, c in e[key][0].items()} == {m: strip(c) for m, c in e2[key][0].items()}


def test_seed_models_names_a_folder_that_is_not_a_demo_run(tmp_path):
    with pytest.raises(ValueError, match=r"demo_out='.*' holds no finished demo run with task 'ds_cnn' and seed '0'"):
        experiments.seed_models(tmp_path, "ds_cnn", "0")
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(ValueError, match=r"task 'resnet18' and seed '1' \(its results.json and resnet18/seed1/\)"):
        experiments.seed_models(tmp_path, "resnet18", "1")


def test_sealed_splits():
    x = np.arange(40, dtype=np.float32).reshape(40, 1)
    y = np.repeat(np.arange(4), 10)
    ds = DataSet("t", ("a", "b", "c", "d"), Split(x, y), Split(x[:8], y[:8]))
    s = protocol.sealed(ds, 0.2, 1)
    assert len(s.test) == 0 and len(s.val) == 8 and len(s.train) == 32
    assert sorted(np.bincount(s.val.y)) == [2, 2, 2, 2]                   # stratified
    assert not set(s.val.x.ravel()) & set(s.train.x.ravel())              # disjoint
    again = protocol.sealed(ds, 0.2, 1)
    assert np.array_equal(again.val.x, s.val.x)                             # seeded
    own = DataSet("t", ds.classes, ds.train, ds.test, val=Split(x[:4], y[:4]))
    assert protocol.sealed(own, 0.2, 1).val is own.val                      # a set's own split is kept


def test_verdict_wording():
    ms = lambda m, s, n: {"mean": m, "std": s, "n": n}  # noqa: E731
    summ = {"h": {"energy_j": ms(1.0, 0.1, 3), "accuracy": ms(0.9, 0.0, 3)},
            "b": {"energy_j": ms(2.0, 0.1, 3), "accuracy": ms(0.9, 0.0, 3)},
            "p": {"energy_j": ms(1.1, 0.1, 3), "accuracy": ms(0.9, 0.0, 3)},
            "one": {"energy_j": ms(0.5, 0.0, 1), "accuracy": ms(0.9, 0.0, 1)},
            "none": {"energy_j": ms(float("nan"), float("nan"), 0), "accuracy": ms(float("nan"), float("nan"), 0)}}
    lines = protocol.verdict(summ, ["h", "one", "none"], ["b", "p"])
    assert lines[0].startswith("h beats b") and lines[1].startswith("h ties with p")
    assert "not a verdict" in lines[2] and "uses less energy than b" in lines[2]
    assert "not comparable" in lines[4]


def test_prune_masks_zero_the_smallest_weights():
    import torch
    import torch.nn as nn

    from hamqcore.quant import quantize_model

    torch.manual_seed(0)
    m = quantize_model(nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 3)), 8, 8)
    mags = torch.cat([m[0].weight.detach().abs().reshape(-1), m[2].weight.detach().abs().reshape(-1)])
    masks = train_mod.prune_masks(m, 0.5)
    left = torch.cat([m[0].weight.detach().reshape(-1), m[2].weight.detach().reshape(-1)])
    assert int((left == 0).sum()) == 52 and set(masks) == {"0.weight", "2.weight"}
    assert float(mags[left == 0].max()) <= float(mags[left != 0].min())    # one threshold over both layers
    with pytest.raises(ValueError, match="prune needs init"):
        train_mod.TrainConfig(prune=0.5).validate()


def test_bf16_autocast_training_runs():
    """precision="bf16": the forward pass under torch.autocast(bfloat16) on the CPU; the loss stays
    finite and the stored weights float32."""
    import torch

    cfg = train_mod.TrainConfig(model="resnet18", data="digits", width=2, epochs=1, train_subset=128, batch_size=32,
                                warmup_epochs=0, ramp_epochs=0, lam=0.1, weighting="params", threads=1,
                                precision="bf16")
    r = train_mod.train(cfg, None, progress=False, log=lambda _: None)
    assert np.isfinite(r.history[-1]["loss"]) and all(p.dtype == torch.float32 for p in r.model.parameters())
    with pytest.raises(ValueError, match="precision must be one of"):
        train_mod.TrainConfig(precision="fp16").validate()


def test_training_threads_cover_hamqcore_kernels_and_are_restored():
    """TrainConfig.threads sets torch's and hamqcore's thread counts while training (workers side by
    side must not each run a two-thread OpenMP team) and restores both afterwards."""
    import torch

    import hamqcore

    before = (torch.get_num_threads(), hamqcore.get_num_threads())
    torch.set_num_threads(2)
    hamqcore.set_num_threads(2)
    seen = []
    try:
        cfg = train_mod.TrainConfig(model="resnet18", data="digits", width=2, epochs=1, train_subset=64, batch_size=32,
                                    warmup_epochs=0, ramp_epochs=0, lam=0.1, weighting="params", threads=1)
        evaluate = train_mod.evaluate

        def spy(*args, **kwargs):   # runs inside training, after its last epoch
            seen.append((torch.get_num_threads(), hamqcore.get_num_threads()))
            return evaluate(*args, **kwargs)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(train_mod, "evaluate", spy)
            train_mod.train(cfg, None, progress=False, log=lambda _: None)
        assert seen and set(seen) == {(1, 1)}
        assert (torch.get_num_threads(), hamqcore.get_num_threads()) == (2, 2)
    finally:
        torch.set_num_threads(before[0])
        hamqcore.set_num_threads(before[1])


def test_the_printed_table_fits_100_columns_and_aligns():
    """The demo's printed table (from the committed v3 results, whose method names run to 17
    characters): every line within 100 columns, every row's columns where the header puts them."""
    from pathlib import Path
    results = json.loads((Path(__file__).parents[1] / "docs" / "results" / "results.json").read_text())
    lines = experiments.demo_table(results).splitlines()
    assert max(len(line) for line in lines) <= 100
    header = next(line for line in lines if line.lstrip().startswith("method"))
    end = header.index("setting") + len("setting")
    rows = [line for line in lines if line.startswith(("  hamq_priced_round  ", "  bits  "))]   # not the verdicts
    assert rows and all(row[end - 1] != " " and row[end] == " " for row in rows), rows


def test_a_target_applied_later_chooses_what_cheapest_config_chooses():
    """apply_target (the demo validates ladder points before the baselines set the budget): the least
    energy among the configurations meeting the target, the first on a tie, none when none meets it."""
    pts = [{"config": "a", "overrides": {}, "accuracy": 0.9, "energy_j": 3.0},
           {"config": "b", "overrides": {"x": 1}, "accuracy": 0.8, "energy_j": 1.0},
           {"config": "c", "overrides": {"x": 2}, "accuracy": 0.95, "energy_j": 3.0},
           {"config": "d", "overrides": {"x": 3}, "accuracy": 0.85, "energy_j": 2.0}]
    for target, want in ((0.0, "b"), (0.81, "d"), (0.86, "a"), (0.91, "c"), (0.96, None)):
        v = protocol.apply_target({"points": [dict(p) for p in pts], "best": None, "target": None}, target)
        assert v["target"] == target and (v["best"] and v["best"]["config"]) == want
        if want is not None:
            assert v["best"] == {k: next(p for p in pts if p["config"] == want)[k]
                                 for k in ("overrides", "accuracy", "energy_j", "config")}
