"""Quantization-aware training with the HamQ regularizer: checkpoints every epoch (written
atomically, so Ctrl-C always leaves a usable one), exact resume, a metrics CSV and a progress bar.

The lam schedule: 0 for ``warmup_epochs`` (the model first learns the task), then a linear ramp over
``ramp_epochs`` to ``lam``, then constant. Weight steps in ``"fixed"`` and ``"lsq"`` mode are
recalibrated to the max step (max|w| / (2^(b-1)-1), the standard fixed-point grid) at the start of
every warm-up epoch and of the first epoch after it (so the penalised phase starts from the grid of the
weights the warm-up learned); after that "fixed" steps are held and "lsq" steps are learned, so the
baseline and HamQ runs start from the same standard grid and differ only by the regularizer.

A loss that is not finite stops training with an error naming the epoch and step (the checkpoint
then holds the last good epoch). Checkpoints are loaded with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
import torch.nn as nn

from .._checks import check_bits, check_choice, check_int, check_nonneg
from ..crossbar import CrossbarConfig
from ..kernels import ENCODINGS, get_num_threads, set_num_threads
from ..nn import WEIGHTINGS, HamQRegularizer, hw_stats
from ..pricing import check_encoding
from ..quant import WEIGHT_MODES, QuantLayer, quantize_model
from . import data as data_mod
from . import distributed
from .io import ensure_writable_dir, save_atomic, write_text_atomic
from .models import DS_CNN_SIZES, ds_cnn, resnet18

MODELS = ("resnet18", "ds_cnn")


class ResumeError(ValueError):
    """--resume cannot continue: no checkpoint, or one written with other settings."""


def _opt(default, help: str, **kw):
    """A TrainConfig field with its help line (``hamq train`` makes one flag per field from these)."""
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: default, metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """Every setting of one training run: the one home of the training defaults (the ``hamq train``
    flags are generated from these fields and their help lines)."""

    model: str = _opt("resnet18", "the model", choices=MODELS)
    data: str = _opt("mnist5k", "data set: mnist5k, digits, spoken_keywords, cifar10:ROOT, speech_commands:ROOT")
    w_bits: int = _opt(8, "weight bits (2..16)")
    a_bits: int = _opt(8, "activation bits (2..16)")
    lam: float = _opt(0.0, "HamQ penalty strength (0: the baseline)")
    epochs: int = _opt(10, "training epochs")
    batch_size: int = _opt(64, "examples per step")
    lr: float = _opt(2e-3, "Adam learning rate")
    weight_decay: float = _opt(0.0, "Adam weight decay")
    seed: int = _opt(0, "seed of the initial weights and the data order")
    width: int = _opt(16, "ResNet-18 width (64 = the standard net)")
    ds_size: str = _opt("S", "DS-CNN size", choices=tuple(DS_CNN_SIZES))
    warmup_epochs: int = _opt(1, "epochs at lam = 0 before the penalty starts")
    ramp_epochs: int = _opt(2, "epochs over which lam ramps linearly up to its value")
    weight_mode: str = _opt("lsq", "weight quantizer step", choices=WEIGHT_MODES)
    weighting: str = _opt("energy", "how the penalty weighs layers and bits", choices=WEIGHTINGS)
    encoding: str = _opt("differential", "the cell encoding the penalty counts", choices=ENCODINGS)
    crossbar: Optional[Dict[str, object]] = _opt(
        None, 'weighting=crossbar: the configuration bits are priced under, as JSON: '
              '{"preset": "neurosim-1.3", "mapping": "differential", ...}')
    price_inputs: int = _opt(2, "weighting=crossbar: training inputs the bits are priced on")
    threads: int = _opt(0, "torch's and hamqcore's threads while training (0: their settings); a fixed count "
                           "makes runs bit-reproducible on one machine type")
    train_subset: int = _opt(0, "use only N training examples, a fixed random choice (0: all)")
    quick_data: bool = _opt(False, "the small synthetic keyword set")
    device: str = _opt("cpu", "where to train: cpu, cuda or cuda:N (the crossbar simulator and the C++ penalty "
                              "run on the CPU; on a GPU the penalty takes its pure-torch path)")
    precision: str = _opt("fp32", "bf16: the forward pass and the task loss under torch.autocast(bfloat16) (the "
                                  "penalty, the optimizer and the stored weights stay float32)", choices=("fp32", "bf16"))
    init: str = _opt("", "start from this checkpoint's weights (a checkpoint.pt of the same model and widths)")
    prune: float = _opt(0.0, "with init: zero this fraction of the quantized layers' weights, smallest magnitude "
                             "first over all layers (global magnitude pruning), and keep them zero while training")
    step_lr_scale: float = _opt(0.05, "learning rate of LSQ steps relative to lr (Adam moves every parameter by "
                                      "about lr per update: far too much for a step of ~1e-3)")

    def validate(self) -> "TrainConfig":
        """Every field checked (a TypeError or ValueError naming it); returns self."""
        for f in dataclasses.fields(self):
            if "choices" in f.metadata:
                check_choice(f.name, getattr(self, f.name), f.metadata["choices"])
        data_mod.parse_spec(self.data)
        check_bits("w_bits", self.w_bits)
        check_bits("a_bits", self.a_bits)
        for name in ("epochs", "batch_size", "width", "price_inputs"):
            check_int(name, getattr(self, name), 1)
        for name in ("warmup_epochs", "ramp_epochs", "train_subset", "threads"):
            check_int(name, getattr(self, name), 0)
        check_int("seed", self.seed, 0, 2 ** 31 - 1)
        for name in ("lam", "weight_decay", "step_lr_scale"):
            check_nonneg(name, getattr(self, name))
        if not isinstance(self.init, str):
            raise TypeError(f"init must be a path (string), got {self.init!r}")
        if not 0.0 <= check_nonneg("prune", self.prune) < 1.0:
            raise ValueError(f"prune must be a fraction in [0, 1), got {self.prune!r}")
        if self.prune > 0 and not self.init:
            raise ValueError("prune needs init: the trained checkpoint whose weights are pruned")
        if check_nonneg("lr", self.lr) == 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not isinstance(self.device, str) or not (self.device == "cpu" or self.device == "cuda"
                                                    or (self.device.startswith("cuda:") and self.device[5:].isdigit())):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.device != "cpu" and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r} asked for, but torch sees no CUDA device here")
        if not isinstance(self.quick_data, bool):
            raise TypeError(f"quick_data must be True or False, got {self.quick_data!r}")
        if self.weighting == "crossbar":
            check_encoding(self.crossbar_config(), self.encoding)
        elif self.crossbar is not None:
            raise ValueError(f"crossbar is used by weighting='crossbar' only, got weighting={self.weighting!r}")
        return self

    def crossbar_config(self) -> CrossbarConfig:
        """The CrossbarConfig that prices bits under weighting="crossbar"."""
        if not isinstance(self.crossbar, dict) or not isinstance(self.crossbar.get("preset"), str):
            raise ValueError("weighting='crossbar' needs crossbar={'preset': name, ...overrides}, "
                             f"got {self.crossbar!r}")
        spec = dict(self.crossbar)
        return CrossbarConfig.preset(spec.pop("preset"), **spec)

    def lam_at(self, epoch: int) -> float:
        """lam used during ``epoch`` (0-based)."""
        if epoch < self.warmup_epochs:
            return 0.0
        if self.ramp_epochs <= 0:
            return float(self.lam)
        return float(self.lam) * min(1.0, (epoch - self.warmup_epochs + 1) / self.ramp_epochs)


def build_model(cfg: TrainConfig, dataset: data_mod.DataSet) -> nn.Module:
    torch.manual_seed(cfg.seed)
    if cfg.model == "resnet18":
        model = resnet18(dataset.num_classes, dataset.input_shape[0], cfg.width)
    else:
        model = ds_cnn(cfg.ds_size, dataset.num_classes)
    return quantize_model(model, cfg.w_bits, cfg.a_bits, weight_mode=cfg.weight_mode)


def load_data(cfg: TrainConfig) -> data_mod.DataSet:
    return data_mod.load(cfg.data, quick=cfg.quick_data, seed=0)


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 256) -> float:
    """Accuracy of ``model`` on (x, y), computed on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            out = model(torch.from_numpy(x[i:i + batch]).to(device))
            correct += int((out.argmax(1).cpu() == torch.from_numpy(y[i:i + batch])).sum())
    return correct / max(1, len(y))


@dataclass
class TrainResult:
    model: nn.Module
    config: TrainConfig
    history: List[Dict[str, float]] = field(default_factory=list)
    test_accuracy: float = 0.0


def use_threads(n: int) -> None:
    """``n`` threads for torch and for hamqcore's C++ kernels alike, so that worker processes side by
    side never oversubscribe the cores (an OpenMP team that waits between calls spins on its core)."""
    torch.set_num_threads(n)
    set_num_threads(n)


def train(cfg: TrainConfig, out: Optional[Path] = None, dataset: Optional[data_mod.DataSet] = None,
          resume: bool = False, progress: bool = True, log: Callable[[str], None] = print) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data``; checkpoints (``out/checkpoint.pt``) after every epoch.
    Runs with torch's deterministic algorithms and, when ``cfg.threads`` is set, that many threads
    for torch and hamqcore (all restored afterwards). Launched by torchrun (WORLD_SIZE > 1) it trains data-parallel
    (:mod:`hamqcore.study.distributed`): each global batch of ``batch_size`` is split over the ranks,
    batch norm and the activation ranges use the global batch, rank 0 writes the checkpoints.

    Deterministic mode without its NaN fill of every new tensor (``torch.utils.deterministic.
    fill_uninitialized_memory``, a guard against ops that read memory they never wrote, about 3 % of a
    DS-CNN-S step): every op of a training step writes what it reads, and the same run with the fill
    on gives the same bits (``tests/test_regressions.py``)."""
    cfg.validate()
    threads, deterministic = (torch.get_num_threads(), get_num_threads()), torch.are_deterministic_algorithms_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    world = distributed.setup(cfg.device)
    try:
        if cfg.threads:
            use_threads(cfg.threads)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = False
        return _train(cfg, out, dataset, resume, progress and world.main, log if world.main else (lambda _: None),
                      world)
    finally:
        torch.set_num_threads(threads[0])
        set_num_threads(threads[1])
        torch.use_deterministic_algorithms(deterministic)
        torch.utils.deterministic.fill_uninitialized_memory = fill
        distributed.teardown(world)


@dataclass
class _Run:
    """What one training run holds while it runs."""

    model: nn.Module
    reg: HamQRegularizer
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    ckpt_path: Optional[Path]
    world: distributed.World
    net: nn.Module                       # what the steps call: the model, or its DistributedDataParallel
    masks: Dict[str, torch.Tensor] = field(default_factory=dict)   # pruned weights stay zero
    history: List[Dict[str, float]] = field(default_factory=list)
    start_epoch: int = 0


def _setup(cfg: TrainConfig, dataset: data_mod.DataSet, xtr: np.ndarray, out: Optional[Path],
           world: distributed.World) -> _Run:
    """The model, its regularizer (lam 0 until the schedule says otherwise), Adam and the schedule."""
    model = build_model(cfg, dataset).to(world.device)
    model(torch.from_numpy(xtr[:16]).to(world.device))  # initialise the quantizers' steps on real data first
    masks = {}
    if cfg.init:
        src, _, _ = load_checkpoint(cfg.init)
        try:
            model.load_state_dict(src.state_dict())
        except RuntimeError as e:
            raise ValueError(f"init {cfg.init}: its weights do not fit this run's model "
                             f"({str(e).splitlines()[0][:200]})") from None
        masks = prune_masks(model, cfg.prune) if cfg.prune > 0 else {}
    if world.size > 1:                                   # (every rank saw the same 16 inputs: one process's state)
        distributed.convert_batchnorm(model)
    priced = cfg.weighting == "crossbar"
    reg = HamQRegularizer(model, bits=cfg.w_bits, lam=0.0, encoding=cfg.encoding, weighting=cfg.weighting,
                          example_input=torch.from_numpy(xtr[:cfg.price_inputs] if priced else xtr[:1]).to(world.device),
                          crossbar=cfg.crossbar_config() if priced else None)
    steps_params = [p for n, p in model.named_parameters() if n.endswith("quant.step")]
    others = [p for n, p in model.named_parameters() if not n.endswith("quant.step")]
    opt = torch.optim.Adam([{"params": others},
                            {"params": steps_params, "lr": cfg.lr * cfg.step_lr_scale, "weight_decay": 0.0}],
                           lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    if out is not None and world.main:
        ensure_writable_dir(Path(out))
    net = model
    if world.size > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[world.device] if world.device.startswith("cuda") else None)
    return _Run(model, reg, opt, sched, Path(out) / "checkpoint.pt" if out is not None else None, world, net, masks)


def _resume(cfg: TrainConfig, run: _Run, log: Callable[[str], None]) -> None:
    """Continue from the run's checkpoint, written with the same settings (a ResumeError otherwise)."""
    if run.ckpt_path is None or not run.ckpt_path.exists():
        raise ResumeError(f"--resume: no checkpoint at {run.ckpt_path}")
    ck = torch.load(run.ckpt_path, weights_only=True, map_location=run.world.device)
    if ck["config"] != dataclasses.asdict(cfg):
        raise ResumeError(f"--resume: {run.ckpt_path} was written with different settings: {ck['config']}")
    run.model.load_state_dict(ck["model"])
    run.opt.load_state_dict(ck["optimizer"])  # torch moves the state to the parameters' device
    run.sched.load_state_dict(ck["scheduler"])
    torch.set_rng_state(ck["torch_rng"])
    run.history, run.start_epoch = ck["history"], ck["epoch"]
    run.reg.unit = ck.get("reg_unit")
    log(f"resumed from {run.ckpt_path} after epoch {run.start_epoch}")


def _epoch(cfg: TrainConfig, run: _Run, epoch: int, xtr: np.ndarray, ytr: np.ndarray, augment: Optional[str],
           gen: torch.Generator, bar) -> Dict[str, float]:
    """One epoch of training; its row of the metrics (without the validation and HW columns)."""
    model, reg = run.model, run.reg
    model.train()
    reg.lam = cfg.lam_at(epoch)
    if epoch <= cfg.warmup_epochs:
        _calibrate_steps(model)
    if cfg.weighting == "crossbar" and reg.lam > 0:  # re-price; the unit is set at the first penalised epoch
        reg.refresh(rescale=epoch == 0 or cfg.lam_at(epoch - 1) == 0)
    n = len(ytr)
    steps = math.ceil(n / cfg.batch_size)
    gen.manual_seed(cfg.seed * 100_003 + epoch)
    order = torch.randperm(n, generator=gen)
    t0 = time.perf_counter()
    tot_loss = tot_reg = 0.0
    correct = 0
    world = run.world
    for s in range(steps):
        idx = order[s * cfg.batch_size:(s + 1) * cfg.batch_size]
        xb, yb = torch.from_numpy(xtr[idx.numpy()]), torch.from_numpy(ytr[idx.numpy()])
        if augment == "cifar":
            xb = data_mod.augment_batch(xb, gen)
        if world.size > 1:                       # this rank's share of the global batch
            xb, yb = xb[world.rank::world.size], yb[world.rank::world.size]
        xb, yb = xb.to(world.device), yb.to(world.device)
        with torch.autocast(device_type=world.device.split(":")[0], dtype=torch.bfloat16,
                            enabled=cfg.precision == "bf16"):
            logits = run.net(xb)
            task = distributed.cross_entropy(logits, yb, len(idx), world)
        task = task.float()
        r = reg()
        loss = task + r
        if not bool(torch.isfinite(loss.detach())):
            raise FloatingPointError(
                f"training diverged: the loss is {float(loss.detach())} at epoch {epoch + 1}, step {s + 1} "
                f"(lr={cfg.lr:g}, lam={reg.lam:g}); "
                + (f"{run.ckpt_path} holds the model after epoch {epoch}" if run.ckpt_path and epoch > run.start_epoch
                   else "no checkpoint was written"))
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        _apply_masks(run)
        tot_loss += float(task.detach()) * len(idx) / world.size
        tot_reg += float(r.detach())
        correct += int((logits.argmax(1) == yb).sum())
        if bar is not None:
            bar.update(1)
            if s % 10 == 0:
                bar.set_postfix(epoch=epoch + 1, loss=f"{float(task.detach()) / world.size:.3f}",
                                acc=f"{correct * world.size / ((s + 1) * cfg.batch_size):.3f}")
    run.sched.step()
    tot_loss, correct = distributed.all_sum(world, [tot_loss, correct])
    return {"epoch": epoch + 1, "lam": reg.lam, "loss": tot_loss / n, "reg": tot_reg / steps,
            "train_acc": correct / n, "seconds": time.perf_counter() - t0}


def _save(cfg: TrainConfig, run: _Run, dataset: data_mod.DataSet, out: Path) -> None:
    save_atomic({"config": dataclasses.asdict(cfg), "model": run.model.state_dict(),
                 "optimizer": run.opt.state_dict(), "scheduler": run.sched.state_dict(),
                 "torch_rng": torch.get_rng_state(), "history": run.history, "epoch": run.history[-1]["epoch"],
                 "reg_unit": run.reg.unit,
                 "classes": list(dataset.classes), "input_shape": list(dataset.input_shape)},
                run.ckpt_path)
    _write_metrics(Path(out) / "metrics.csv", run.history)


def _train(cfg: TrainConfig, out: Optional[Path], dataset: Optional[data_mod.DataSet], resume: bool, progress: bool,
           log: Callable[[str], None], world: distributed.World) -> TrainResult:
    dataset = dataset if dataset is not None else load_data(cfg)
    xtr, ytr = dataset.train.x, dataset.train.y
    if cfg.train_subset:
        idx = subset_indices(len(ytr), cfg.train_subset)
        xtr, ytr = xtr[idx], ytr[idx]
    run = _setup(cfg, dataset, xtr, out, world)
    if resume:
        _resume(cfg, run, log)
    gen = torch.Generator()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=(cfg.epochs - run.start_epoch) * math.ceil(len(ytr) / cfg.batch_size),
                   desc=f"{cfg.model} lam={cfg.lam:g}", unit="step", leave=False, dynamic_ncols=True)
    try:
        for epoch in range(run.start_epoch, cfg.epochs):
            row = _epoch(cfg, run, epoch, xtr, ytr, dataset.augment, gen, bar)
            if dataset.val is not None and len(dataset.val):
                row["val_acc"] = evaluate(run.model, dataset.val.x, dataset.val.y)
            row["mean_hw"] = hw_stats(run.model, cfg.w_bits, cfg.encoding)["total"]["mean_hw"]
            run.history.append(row)
            if bar is not None:
                bar.set_postfix(epoch=epoch + 1, loss=f"{row['loss']:.3f}", acc=f"{row['train_acc']:.3f}",
                                hw=f"{row['mean_hw']:.3f}")
            if out is not None and world.main:
                _save(cfg, run, dataset, out)
            distributed.barrier(world)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        done = run.history[-1]["epoch"] if run.history else run.start_epoch
        log(f"interrupted: {run.ckpt_path or 'no checkpoint'} holds the model after epoch {done}; "
            "continue with --resume")
        raise
    if bar is not None:
        bar.close()
    acc = evaluate(run.model, dataset.test.x, dataset.test.y)
    if out is not None and world.main:
        write_text_atomic(Path(out) / "result.json", json.dumps(
            {"config": dataclasses.asdict(cfg), "test_accuracy": acc, "history": run.history}, indent=2))
    return TrainResult(model=run.model, config=cfg, history=run.history, test_accuracy=acc)


def subset_indices(n: int, size: int) -> np.ndarray:
    """``train_subset``: ``size`` of ``n`` training examples, a fixed pseudo-random choice in their
    order (the first ``size`` would be a few classes of a set stored class by class, like mnist5k)."""
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).permutation(n)[:size])


def prune_masks(model: nn.Module, fraction: float) -> Dict[str, torch.Tensor]:
    """Global magnitude pruning (Han et al., NeurIPS 2015): zero the ``fraction`` of all quantized
    layers' weights with the smallest magnitude (one threshold over every layer); the masks that
    keep them zero, by parameter name. The model's weights are changed in place."""
    layers = {n: m for n, m in model.named_modules() if isinstance(m, QuantLayer)}
    mags = torch.cat([m.weight.detach().abs().reshape(-1) for m in layers.values()])
    k = int(round(fraction * mags.numel()))
    if k == 0:
        return {}
    threshold = torch.kthvalue(mags.cpu(), k).values.item()
    masks = {}
    with torch.no_grad():
        for n, m in layers.items():
            keep = m.weight.abs() > threshold
            m.weight.mul_(keep)
            masks[f"{n}.weight" if n else "weight"] = keep
    return masks


def _apply_masks(run: "_Run") -> None:
    if run.masks:
        params = dict(run.model.named_parameters())
        with torch.no_grad():
            for name, keep in run.masks.items():
                params[name].mul_(keep)


def _calibrate_steps(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, QuantLayer) and m.w_quant.mode in ("fixed", "lsq"):
            m.w_quant.calibrate(m.weight)


def _write_metrics(path: Path, history: List[Dict[str, float]]) -> None:
    keys = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)


CHECKPOINT_KEYS = ("config", "model", "classes", "input_shape")


def load_checkpoint(path) -> tuple:
    """(model in eval mode, TrainConfig, checkpoint dict) from a ``checkpoint.pt`` written by
    :func:`train`. Anything else (another program's file, a model saved with ``torch.save(model)``,
    a damaged or edited checkpoint) is a ValueError saying what is wrong; models that are not the
    study's own go through the Python API (:mod:`hamqcore.energy`, :mod:`hamqcore.rounding`)."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a regular file")
    hint = ("hamq reads the checkpoints `hamq train` writes; for your own model give --factory MODULE:FUNCTION "
            "[--state-dict FILE] or --exported PROGRAM.pt2 (with --data SPEC), or use the Python API "
            "(hamqcore.energy.estimate_energy, hamqcore.rounding.hw_aware_round)")
    try:
        ck = torch.load(path, weights_only=True, map_location="cpu")   # trained anywhere, read on the CPU
    except Exception as e:  # noqa: BLE001 - torch raises many kinds; none is a hamqcore checkpoint
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path} is not a hamqcore checkpoint ({first[:200]}); {hint}") from None
    if not isinstance(ck, dict) or any(k not in ck for k in CHECKPOINT_KEYS):
        missing = [k for k in CHECKPOINT_KEYS if not isinstance(ck, dict) or k not in ck]
        raise ValueError(f"{path} is not a hamqcore checkpoint: it lacks {', '.join(missing)}; {hint}")
    try:   # a model trained on a GPU is read back on the CPU
        cfg = TrainConfig(**{**ck["config"], "device": "cpu"}).validate()
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: its training settings are not valid: {e}") from None
    shape, classes = ck["input_shape"], ck["classes"]
    if (not isinstance(shape, (list, tuple)) or not shape
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape)):
        raise ValueError(f"{path}: input_shape must be a list of positive integers, got {shape!r}")
    if not isinstance(classes, (list, tuple)) or not classes or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"{path}: classes must be a non-empty list of names, got {classes!r}")
    fake = data_mod.DataSet("checkpoint", tuple(classes),
                            data_mod.Split(np.zeros((1, *shape), np.float32), np.zeros(1, np.int64)),
                            data_mod.Split(np.zeros((1, *shape), np.float32), np.zeros(1, np.int64)))
    try:
        model = build_model(cfg, fake)  # every quantizer parameter and buffer exists from construction
        model.load_state_dict(ck["model"])
    except (RuntimeError, TypeError, ValueError, KeyError, AttributeError) as e:
        first = str(e).strip().splitlines()[0]
        raise ValueError(f"{path}: its weights do not fit its {cfg.model} settings ({first[:300]})") from None
    return model.eval(), cfg, ck
