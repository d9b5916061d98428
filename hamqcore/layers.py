"""The model walk: which layers of a torch model map onto the crossbar, the integers they store,
their inputs on a forward pass, and their inputs laid out as matrices.

Every consumer of a model (the regularizer, the energy estimator, the crossbar forward pass, bit
pricing, HW-aware rounding) goes through these functions, so they agree on which layers are covered
and on what each one stores:

* :func:`quantizable_layers`: every Conv1d/Conv2d/Linear (torch.ao's quantized ones too), filtered by
  name patterns;
* :func:`layer_integers`: the integer weights a layer stores (its own quantizer's for a hamqcore
  quantized layer, else symmetric per-output-channel max-step integers);
* :func:`evaluating` / :func:`dry_run` / :func:`capture_layer_inputs`: one forward pass in eval
  mode without grad, the training mode restored afterwards;
* :func:`im2col` / :func:`layer_matrices`: a layer's integer weights and inputs as matrices, per group.
"""
from __future__ import annotations

import contextlib
import fnmatch
import types
import warnings
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .quant import (QMultiheadAttention, QuantLayer, grid_integers, has_library_weight_quant, input_value, is_conv1d,
                    is_linear, is_torch_ao_layer, is_torchao_layer, library_input_quant, library_weight_quant,
                    quantize_activation, weight_scale_max, weight_shape)

LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Linear)
NOT_CALLED = "its layer is never called by the model's forward pass on these inputs"
WARN_FRACTION = 0.01   # an uncovered weight tensor with this share of the model's parameters is warned about


def _patterns(include, exclude):
    include = [include] if isinstance(include, str) else (None if include is None else list(include))
    exclude = [exclude] if isinstance(exclude, str) else list(exclude)
    return include, exclude


def _selected(name: str, include, exclude) -> bool:
    if include is not None and not any(fnmatch.fnmatchcase(name, p) for p in include):
        return False
    return not any(fnmatch.fnmatchcase(name, p) for p in exclude)


def _in_float_attention(model: nn.Module, name: str) -> bool:
    """Whether ``name`` lies inside an nn.MultiheadAttention, which uses its out_proj's weight without
    calling its forward (so no hook on it ever fires)."""
    parts = name.split(".")
    return any(isinstance(model.get_submodule(".".join(parts[:i])), nn.MultiheadAttention)
               for i in range(1, len(parts)))


def quantizable_layers(model: nn.Module, include: Optional[Iterable[str]] = None,
                       exclude: Iterable[str] = ()) -> List[Tuple[str, nn.Module]]:
    """(name, module) of every Conv1d/Conv2d/Linear the walks map onto crossbars (torch.ao's eager-mode
    quantized ones included: :func:`hamqcore.quant.is_torch_ao_layer`), filtered by fnmatch patterns on
    the name. Linear layers inside a float ``nn.MultiheadAttention`` are left out (it never calls their
    forward; :func:`hamqcore.quant.quantize_model` maps it): :func:`coverage` lists them."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    include, exclude = _patterns(include, exclude)
    return [(name, m) for name, m in model.named_modules()
            if (isinstance(m, LAYER_TYPES) or is_torch_ao_layer(m)) and _selected(name, include, exclude)
            and not _in_float_attention(model, name)]


@dataclass
class Coverage:
    """Which weight tensors (parameters of 2 or more dimensions) a walk maps onto crossbars.

    ``covered``: (name, elements); ``excluded``: (name, elements, why) for tensors that are no crossbar
    matrix by design (an embedding is a lookup) or that the caller left out (include/exclude);
    ``uncovered``: (name, elements, why) for the rest, which are warned about;
    ``parameters``: every parameter of the model; ``notes``: what the covered layers leave digital."""

    covered: List[Tuple[str, int]] = field(default_factory=list)
    excluded: List[Tuple[str, int, str]] = field(default_factory=list)
    uncovered: List[Tuple[str, int, str]] = field(default_factory=list)
    parameters: int = 0
    notes: List[str] = field(default_factory=list)

    @property
    def covered_fraction(self) -> float:
        """Covered weight elements over all weight elements (excluded ones left out)."""
        c = sum(n for _, n in self.covered)
        total = c + sum(n for _, n, _ in self.uncovered)
        return c / total if total else 1.0

    def significant(self, fraction: float = WARN_FRACTION) -> List[Tuple[str, int, str]]:
        """The uncovered tensors holding at least ``fraction`` of the model's parameters."""
        return [u for u in self.uncovered if self.parameters and u[1] >= fraction * self.parameters]

    def warn(self, api: str, fraction: float = WARN_FRACTION) -> "Coverage":
        big = self.significant(fraction)
        if big:
            share = 100.0 * sum(n for _, n, _ in big) / self.parameters
            listed = "; ".join(f"{name} ({why})" for name, _, why in big[:4]) + (" ..." if len(big) > 4 else "")
            warnings.warn(f"{api}: {len(big)} weight tensor(s) holding {share:.1f} % of the model's parameters are not "
                          f"mapped onto the crossbar: {listed}. See hamqcore.coverage(model).", UserWarning,
                          stacklevel=3)
        return self

    def move(self, layers: Iterable[str], why: str) -> "Coverage":
        """Move the covered weights of the layers named ``layers`` to ``uncovered``, with ``why``."""
        layers = set(layers)
        moved = [(n, k) for n, k in self.covered if (n[:-len(".weight")] if n.endswith(".weight") else "") in layers]
        self.covered = [c for c in self.covered if c not in moved]
        self.uncovered += [(n, k, why) for n, k in moved]
        return self

    def to_dict(self) -> Dict[str, object]:
        return {"covered": [list(c) for c in self.covered], "excluded": [list(e) for e in self.excluded],
                "uncovered": [list(u) for u in self.uncovered], "parameters": self.parameters,
                "covered_fraction": self.covered_fraction, "notes": list(self.notes)}

    def __str__(self) -> str:
        lines = [f"{len(self.covered)} weight tensors mapped onto the crossbar "
                 f"({100 * self.covered_fraction:.1f} % of the weights; {self.parameters} parameters in all)"]
        for title, rows in (("not mapped", self.uncovered), ("excluded by design", self.excluded)):
            if rows:
                lines.append(f"{title}:")
                lines += [f"  {name:<40} {n:>10}  {why}" for name, n, why in rows]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def walk_coverage(model: nn.Module, captured, include: Optional[Iterable[str]] = None) -> Coverage:
    """:func:`coverage` of a walk that ran the forward pass (``captured``, from
    :func:`capture_layer_inputs`): the layers it never called are moved to the uncovered ones."""
    called = {label.split("#")[0] for label, _, _ in captured}
    return coverage(model, include).move((n for n, _ in quantizable_layers(model, include) if n not in called),
                                         NOT_CALLED)


def is_quantized(m: nn.Module) -> bool:
    """Whether ``m`` holds its own integers: a hamqcore quantized layer, or another library's
    (:func:`hamqcore.quant.library_weight_quant`)."""
    return isinstance(m, QuantLayer) or has_library_weight_quant(m)


def float_layers(model: nn.Module) -> List[str]:
    """The names of the mappable layers that hold no integers of their own (no quantized layer)."""
    return [n for n, m in quantizable_layers(model) if not is_quantized(m)]


def coverage(model: nn.Module, include: Optional[Iterable[str]] = None, exclude: Iterable[str] = ()) -> Coverage:
    """Which of ``model``'s weight tensors every hamqcore walk (the regularizer, the energy estimate,
    the crossbar forward pass, bit pricing, rounding) maps onto crossbars, and why the others are not.
    Layers the forward pass never calls show up only in the walks that run it."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    include, exclude = _patterns(include, exclude)
    chosen = {name for name, _ in quantizable_layers(model, include, exclude)}
    cov = Coverage(parameters=sum(p.numel() for p in model.parameters()))
    for mname, m in model.named_modules():
        for pname, p in m.named_parameters(recurse=False):
            if p.dim() < 2:
                continue
            full = f"{mname}.{pname}" if mname else pname
            if mname in chosen and pname == "weight":
                cov.covered.append((full, p.numel()))
            elif isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
                cov.excluded.append((full, p.numel(), "an embedding is a table lookup, not a crossbar MAC"))
            elif isinstance(m, nn.MultiheadAttention) or (isinstance(m, LAYER_TYPES) and _in_float_attention(model, mname)):
                cov.uncovered.append((full, p.numel(), "inside nn.MultiheadAttention, which never calls a Linear's "
                                      "forward: hamqcore.quant.quantize_model maps it to QMultiheadAttention"))
            elif isinstance(m, LAYER_TYPES):
                cov.excluded.append((full, p.numel(), "left out by include/exclude"))
            elif isinstance(m, (nn.modules.conv._ConvNd, nn.Bilinear)):
                cov.uncovered.append((full, p.numel(), f"{type(m).__name__} is not mapped (hamqcore maps Conv1d, "
                                      "Conv2d and Linear)"))
            else:
                cov.uncovered.append((full, p.numel(), f"a parameter of {type(m).__name__}, not a Conv1d/Conv2d/Linear "
                                      "weight: how the model uses it is unknown to hamqcore"))
        if _packed_quantized(m):    # torch.ao's eager quantized modules keep packed weights, no parameter
            n = m.weight().numel()
            cov.parameters += n
            if mname in chosen:
                cov.covered.append((f"{mname}.weight", n))
            elif is_torch_ao_layer(m):
                cov.excluded.append((f"{mname}.weight", n, "left out by include/exclude"))
            else:
                cov.uncovered.append((f"{mname}.weight", n, f"torch.ao's {type(m).__name__} with "
                                      f"{getattr(getattr(m, '_packed_params', None), 'dtype', m.weight().dtype)} weights is not mapped (hamqcore maps torch.ao's quantized "
                                      "Linear, Conv1d and Conv2d with qint8 weights)"))
    qat = [n for n, m in model.named_modules() if n in chosen and hasattr(m, "weight_fake_quant")
           and type(m).__module__.startswith("torch.ao.nn.")]
    if qat:     # torch.ao's prepare_qat modules are nn.Linear / nn.Conv subclasses with a FakeQuantize
        cov.notes.append(f"{len(qat)} layer(s) are torch.ao QAT modules ({qat[0]}, ...): read as float layers on "
                         "hamqcore's own grid, not through their FakeQuantize; torch.ao.quantization.convert "
                         "them to read torch.ao's integers")
    if any(isinstance(m, QMultiheadAttention) for m in model.modules()):
        cov.notes.append("attention's QK^T and AV products multiply activations by activations: they are not "
                         "crossbar MACs and are not charged (digital)")
    return cov


def _packed_quantized(m: nn.Module) -> bool:
    """Whether ``m`` is one of torch.ao's quantized modules (torch.ao.nn.quantized[.dynamic], and the
    fused ones of torch.ao.nn.intrinsic.quantized): its weight is a packed quantized tensor behind a
    ``weight()`` method, invisible to ``parameters()``."""
    mod = type(m).__module__
    return (mod.startswith("torch.ao.nn.quantized") or mod.startswith("torch.ao.nn.intrinsic.quantized")) and \
        callable(getattr(m, "weight", None))


def check_batch(name: str, inputs) -> torch.Tensor:
    """``inputs`` as a batch a model can run: a torch.Tensor of floats (or of integers, e.g. token ids)
    with at least one example (a TypeError for anything else, a ValueError for an empty batch or
    NaN/inf)."""
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor batch (N, ...), got {type(inputs).__name__}")
    if inputs.dtype == torch.bool or inputs.is_complex():
        raise TypeError(f"{name} must be a tensor of floats or integers, got {inputs.dtype}")
    if inputs.dim() < 1 or inputs.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one example, got shape {tuple(inputs.shape)}")
    if inputs.is_floating_point() and not bool(torch.isfinite(inputs).all()):
        raise ValueError(f"{name} holds NaN or inf")
    return inputs


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no grad inside the block; the model's training mode is restored afterwards."""
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def dry_run(model: nn.Module, inputs, hooks):
    """Run ``model(inputs)`` once (:func:`evaluating`), then remove ``hooks``; returns the output."""
    try:
        with evaluating(model):
            return model(inputs)
    finally:
        for h in hooks:
            h.remove()


def check_finite_weights(m: nn.Module, name: str = "") -> None:
    """ValueError naming the layer when its weights hold NaN or inf (a diverged model): their
    integers would otherwise read as 0 ON cells."""
    if is_torch_ao_layer(m):     # integer codes; their scales are checked where they are read
        return
    w = m.weight.detach() if not is_torchao_layer(m) else m.weight.scale.detach()  # torchao: integer codes
    # a sum is NaN or inf when any element is (cheap); only then count exactly (a huge finite sum
    # that overflows is re-checked, so nothing is reported wrongly)
    if not bool(torch.isfinite(w.sum())) and not bool(torch.isfinite(w).all()):
        bad = int((~torch.isfinite(w)).sum())
        raise ValueError(f"{_label(m, name)} has {bad} non-finite weight(s) (NaN or inf): the model diverged, so "
                         "its quantized weights and energy are meaningless")


def _label(m: nn.Module, name: str) -> str:
    return f"layer {name!r}" if name else f"a {type(m).__name__} layer"


def layer_integers(m: nn.Module, bits: int = 8, name: str = "") -> Tuple[np.ndarray, int]:
    """(integer weights as int16 numpy, bits) a layer stores on the crossbar: a quantized layer's
    own integers, else each output channel's symmetric max-step integers at ``bits``. A quantizer
    step that is not a finite number > 0 is a ValueError naming the layer (its integers would be
    meaningless, e.g. all 0 for an infinite step). NaN or infinite weights are a ValueError naming the
    layer: :func:`grid_integers` refuses them in the pass that rounds them (no pass of its own)."""
    if not isinstance(m, QuantLayer) and has_library_weight_quant(m):
        check_finite_weights(m, name)
        lib = library_weight_quant(m, name)
        if lib is not None:         # another library's quantized layer: its own integers and width
            return lib[0].to(torch.int16).cpu().numpy(), lib[2]
    try:
        if isinstance(m, QuantLayer):
            q, s = m.weight_integers(torch.int16)
        else:
            return grid_integers(m.weight.detach(), bits, None, torch.int16).cpu().numpy(), bits
    except ValueError:
        check_finite_weights(m, name)  # non-finite weights: the error that names the layer
        raise
    if not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
        bad = s.reshape(-1)[~(torch.isfinite(s.reshape(-1)) & (s.reshape(-1) > 0))]
        raise ValueError(f"{_label(m, name)}: its weight quantizer step must be a finite number > 0, got "
                         f"{float(bad[0])} ({bad.numel()} channel(s)); the checkpoint or the training is broken")
    return q.cpu().numpy(), m.w_bits


def from_exported(program) -> nn.Module:
    """A ``torch.export`` program (``torch.export.export`` / ``torch.export.load``) as a module the walks
    can map: ``program.module()``, its graph's ``aten.linear`` / ``aten.conv1d`` / ``aten.conv2d`` calls on
    stored weights turned back into ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` modules named after
    their weights' owners (``layer1.0.conv1``), holding the same parameters, with the call's stride,
    padding, dilation and groups. It computes what the program computes (the same aten calls). A call
    on a computed weight (e.g. a weight norm), or on an owner that holds more than its weight and bias,
    stays a graph operation: :func:`coverage` lists its parameter as not mapped."""
    if not isinstance(program, torch.export.ExportedProgram):
        raise TypeError(f"program must be a torch.export.ExportedProgram, got {type(program).__name__}")
    aten = torch.ops.aten
    kinds = {aten.linear.default: nn.Linear, aten.conv1d.default: nn.Conv1d, aten.conv2d.default: nn.Conv2d,
             aten.conv1d.padding: nn.Conv1d, aten.conv2d.padding: nn.Conv2d}
    gm = program.module()
    graph = gm.graph
    for node in list(graph.nodes):
        cls = kinds.get(node.target) if node.op == "call_function" else None
        if cls is None:
            continue
        names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
        args = dict(zip(names, node.args), **node.kwargs)
        w, b = args["weight"], args.get("bias")
        if getattr(w, "op", None) != "get_attr" or (b is not None and getattr(b, "op", None) != "get_attr"):
            continue
        owner, _, attr = w.target.rpartition(".")
        if not owner or attr != "weight" or (b is not None and b.target != f"{owner}.bias"):
            continue
        holder = gm.get_submodule(owner)
        if list(holder.children()) or {n for n, _ in holder.named_parameters()} - {"weight", "bias"}:
            continue
        weight = holder.weight
        bias = holder.bias if b is not None else None
        if cls is nn.Linear:
            layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        else:
            dims, groups = weight.dim() - 2, args.get("groups", 1)
            padding = args.get("padding", [0] * dims)          # ints, or aten.convNd.padding's "same"/"valid"
            layer = cls(weight.shape[1] * groups, weight.shape[0], tuple(weight.shape[2:]),
                        stride=tuple(args.get("stride", [1] * dims)),
                        padding=padding if isinstance(padding, str) else tuple(padding),
                        dilation=tuple(args.get("dilation", [1] * dims)), groups=groups, bias=bias is not None)
        layer.weight = weight
        if bias is not None:
            layer.bias = bias
        parent, _, child = owner.rpartition(".")
        setattr(gm.get_submodule(parent) if parent else gm, child, layer.train(gm.training))
        with graph.inserting_before(node):
            call = graph.call_module(owner, (args["input"],))
        call.meta = dict(node.meta)
        node.replace_all_uses_with(call)
        graph.erase_node(node)
    graph.eliminate_dead_code()
    gm.recompile()
    # its graph fixed the mode at export (torch refuses train() and eval() on it): eval() only sets the
    # flags the walks save and restore, train() stays refused
    for m in gm.modules():
        m.training = False
    gm.train = types.MethodType(_fixed_mode_train, gm)
    gm.eval = types.MethodType(lambda self: self.train(False), gm)
    return gm


def _fixed_mode_train(self, mode: bool = True):
    if mode:
        raise NotImplementedError("an exported program's graph fixed its mode at export: it cannot be put in "
                                  "training mode")
    return nn.Module.train(self, False)


# Max pooling as torch runs it: nn.MaxPool* / nn.AdaptiveMaxPool* modules (through F.max_pool*),
# the functional forms, torch.max_pool*d, and the aten ops an exported program calls.
_MAX_POOL_FUNCS = frozenset(f"{a}max_pool{d}d{i}" for a in ("", "adaptive_", "fractional_", "quantized_",
                                                            "mkldnn_")
                            for d in (1, 2, 3) for i in ("", "_with_indices"))


class _MaxPoolSeen(torch.overrides.TorchFunctionMode):
    """Calls ``seen()`` whenever a max pooling runs (a module, a functional call or an aten op)."""

    def __init__(self, seen):
        super().__init__()
        self.seen = seen

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(getattr(func, "overloadpacket", func), "__name__", "")
        if name in _MAX_POOL_FUNCS:
            self.seen()
        return func(*args, **(kwargs or {}))


def capture_layer_inputs(model: nn.Module, inputs, layers: Optional[Sequence[str]] = None,
                         pooled: Optional[List[bool]] = None) -> List[Tuple[str, nn.Module, torch.Tensor]]:
    """Run ``model(inputs)`` once (eval, no grad); return [(name, module, input tensor)] in call
    order. A module called several times appears once per call (``name#2``, ...). ``pooled``: a list
    filled with one flag per call, whether a max pooling ran after it and before the next call: an
    ``nn.MaxPool`` / ``nn.AdaptiveMaxPool`` module, ``F.max_pool*`` / ``F.adaptive_max_pool*``,
    ``torch.max_pool*d`` or the aten op of an exported program (torch's function mode sees them all)."""
    chosen = quantizable_layers(model, include=layers)
    captured: List[Tuple[str, nn.Module, torch.Tensor]] = []
    seen: Dict[str, int] = {}

    def pre_hook(name):
        def fn(module, args):
            seen[name] = seen.get(name, 0) + 1
            label = name if seen[name] == 1 else f"{name}#{seen[name]}"
            captured.append((label, module, args[0].detach()))
            if pooled is not None:
                pooled.append(False)
        return fn

    def pooling():
        if pooled:
            pooled[-1] = True

    hooks = [m.register_forward_pre_hook(pre_hook(n)) for n, m in chosen]
    if pooled is None:
        dry_run(model, inputs, hooks)
    else:
        pooled.clear()
        with _MaxPoolSeen(pooling):
            dry_run(model, inputs, hooks)
    return captured


def _conv_padding(m: nn.Module, x: torch.Tensor, kernel, dilation, padding):
    """x padded as the conv pads it (any padding mode, 'same' and 'valid' included); returns
    (x, the padding left for F.unfold, always zeros-mode)."""
    if isinstance(padding, str):  # 'same' / 'valid'
        if padding == "valid":
            return x, (0, 0)
        total = [d * (k - 1) for d, k in zip(dilation, kernel)]
        pad = (total[1] // 2, total[1] - total[1] // 2, total[0] // 2, total[0] - total[0] // 2)
        mode = "constant" if m.padding_mode == "zeros" else m.padding_mode
        return F.pad(x, pad, mode=mode), (0, 0)
    if m.padding_mode != "zeros" and any(padding):
        return F.pad(x, (padding[1], padding[1], padding[0], padding[0]), mode=m.padding_mode), (0, 0)
    return x, padding


def im2col(x: torch.Tensor, m: nn.Module) -> torch.Tensor:
    """A conv's input (N, C, *spatial) of one group -> (N * positions, C * prod(kernel)), float32
    (exact for integer values below 2^24), the rows in the order the conv's outputs are laid out."""
    x = x.to(torch.float32)
    if is_conv1d(m):
        x = x.unsqueeze(2)
        kernel, stride, dilation = (1, m.kernel_size[0]), (1, m.stride[0]), (1, m.dilation[0])
        padding = (0, m.padding[0]) if not isinstance(m.padding, str) else m.padding
    else:
        kernel, stride, dilation, padding = m.kernel_size, m.stride, m.dilation, m.padding
    x, padding = _conv_padding(m, x, kernel, dilation, padding)
    cols = F.unfold(x, kernel, dilation=dilation, padding=padding, stride=stride)  # (N, C*k, L)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def input_integers(m: nn.Module, x, a_bits: int = 8, name: str = ""):
    """(integers, step, bits, signed) of layer ``m``'s input ``x``: its own quantizer's (hamqcore's or
    another library's), else per-tensor max-scaled integers at ``a_bits``."""
    if isinstance(m, QuantLayer):
        xq, sx, signed = m.input_integers(x)
        return xq, sx, m.a_bits, signed
    lib = library_input_quant(m, x, name)
    if lib is not None:
        return lib
    xq, sx, signed = quantize_activation(input_value(x), a_bits)
    return xq, sx, a_bits, signed


def layer_steps(m: nn.Module, x, w_bits: int = 8, a_bits: int = 8, name: str = ""):
    """(input step, weight step per output channel) of the integers :func:`layer_matrices` returns for
    layer ``m`` on input ``x``: a real value is its integer times its step. The input step is a float,
    or a float64 tensor (vectors, 1) where a library scales every input vector (token) of a Linear layer
    on its own (torchao's dynamic per-token inputs): applied to that vector's outputs, after the crossbar."""
    if isinstance(m, QuantLayer):
        sw = m.weight_integers()[1]
    else:
        lib = library_weight_quant(m, name)
        sw = lib[1] if lib is not None else weight_scale_max(m.weight, w_bits)
    rows = weight_shape(m)[0]
    if sw.numel() not in (1, rows) or (sw.numel() == rows > 1 and sw.shape[0] != rows):
        raise ValueError(f"{_label(m, name)}: its weights are scaled per block ({sw.numel()} steps for {rows} output "
                         "channels, e.g. torchao's per-group scales): a crossbar column sums its rows with one step, "
                         "so the forward pass cannot be read off the crossbar; its energy can (estimate_energy)")
    sx = input_integers(m, x, a_bits, name)[1]
    if sx.numel() == 1:
        return float(sx), sw.detach().reshape(-1).expand(rows)
    vectors = input_value(x).shape[:-1]
    if not is_linear(m) or tuple(sx.shape) != (*vectors, 1):
        raise ValueError(f"{_label(m, name)}: its inputs are scaled per block ({sx.numel()} steps, e.g. torchao's "
                         "per-token steps on a convolution's rows): a crossbar input vector would mix them, so the "
                         "forward pass cannot be read off the crossbar; its energy can (estimate_energy)")
    return sx.reshape(-1, 1).to(torch.float64), sw.detach().reshape(-1).expand(rows)


def layer_matrices(m: nn.Module, x: torch.Tensor, w_bits: int, a_bits: int, name: str = ""):
    """Integer weights and input matrices of one layer, per group:
    (w_groups, x_groups, w_bits, a_bits, a_signed, groups). A Linear layer's input may have any
    leading dimensions (tokens): every vector along the last axis is one input row."""
    w_int, wb = layer_integers(m, w_bits, name)
    xv = input_value(x)             # a quantization library's quant tensor carries its float value
    if not bool(torch.isfinite(xv.sum())) and not bool(torch.isfinite(xv).all()):
        raise ValueError(f"layer {name!r}: its input holds NaN or inf (the model's activations diverged)")
    xq, _, ab, signed = input_integers(m, x, a_bits, name)
    x_dtype = np.int16 if ab <= 15 else np.int32
    if is_linear(m):
        return [w_int], [xq.reshape(-1, xq.shape[-1]).cpu().numpy().astype(x_dtype)], wb, ab, signed, 1
    g = m.groups
    cin = xq.shape[1] // g
    out = w_int.shape[0] // g
    w_groups, x_groups = [], []
    for i in range(g):
        w_groups.append(np.ascontiguousarray(w_int[i * out:(i + 1) * out].reshape(out, -1)))
        cols = im2col(xq[:, i * cin:(i + 1) * cin], m)
        x_groups.append(cols.to(torch.int16 if x_dtype == np.int16 else torch.int32).cpu().numpy())  # exact integers
    return w_groups, x_groups, wb, ab, signed, g
