"""Bit prices: what one ON cell at each bit of a layer's stored code costs in the crossbar simulator,
and the unit that turns prices into "ON cells per weight" (the regularizer's ``weighting="crossbar"``
and HW-aware rounding's ``crossbar=`` both price bits here).

Every crossbar mapping stores one code bit per cell bit, in the penalty encoding of the same name
(``"offset"``, ``"differential"``, ``"twos_complement"``): :func:`check_encoding` is that rule.
"""
from __future__ import annotations

import warnings
from typing import Dict, Optional

import numpy as np
import torch.nn as nn

from ._checks import check_int, level_max
from .crossbar import CrossbarConfig, check_config, simulate_groups
from .kernels import level_codes, level_cost, total_hamming_weight
from .layers import capture_layer_inputs, check_batch, layer_integers, layer_matrices, walk_coverage


def check_encoding(config: CrossbarConfig, encoding: str) -> str:
    """``encoding`` when it is the code ``config``'s mapping stores (the mapping's own name), else a
    ValueError saying which it must be."""
    if encoding != config.mapping:
        raise ValueError(f"encoding must be {config.mapping!r}, the code the {config.mapping!r} mapping stores, "
                         f"got {encoding!r}")
    return encoding


def _place_values(q: np.ndarray, bits: int, mapping: str) -> np.ndarray:
    """What a 1 at each bit p of the stored code adds to the level q, shape (bits, *q.shape): 2^p
    for the offset code, 2^p (-2^(b-1) for the sign bit) for two's complement, sign(q) 2^p for the
    differential mapping's magnitude code (+2^p for q = 0); a standard property of each code."""
    p = (1 << np.arange(bits, dtype=np.int64)).reshape(-1, *([1] * q.ndim))
    if mapping == "differential":
        return p * np.where(q < 0, -1, 1)
    if mapping == "twos_complement":
        p = p.copy()
        p[bits - 1] = -p[bits - 1]
    return np.broadcast_to(p, (bits, *q.shape))


def bit_prices(model: nn.Module, inputs, config: CrossbarConfig, w_bits: int = 8, a_bits: int = 8,
               n_threads: Optional[int] = None, probe_every: int = 64) -> Dict[str, np.ndarray]:
    """The crossbar energy of one ON cell at each bit of each layer's stored code (J per inference,
    LSB first; keys: the layers' names), measured in the simulator under ``config`` on ``inputs``.

    For bit p of a layer: ``(E - E_without) / n_p``, where ``E_without`` is the layer's energy with
    bit p cleared in all of its n_p weights that have it (the average energy an ON cell there costs,
    including the conversions and array reads it keeps alive); when no weight has bit p, the energy
    added by setting it in every ``probe_every``-th weight, per cell set (the price of reopening the
    position). Bits a mapping never stores (the differential code's sign position) cost 0. Each price
    is >= 0 (an ablation that saves nothing prices 0). Energies are per inference; a module called
    several times sums its calls. Layers are quantized as in :func:`estimate_energy`. Warns when every
    price is 0 (an accounting whose energy does not see the stored bits, as ``"neurosim-1.4"``'s SRAM)."""
    check_config(config)
    probe_every = check_int("probe_every", probe_every, 1)
    batch = int(check_batch("inputs", inputs).shape[0])
    prices: Dict[str, np.ndarray] = {}
    captured = capture_layer_inputs(model, inputs)
    walk_coverage(model, captured).warn("bit_prices")
    for label, module, x in captured:
        name = label.split("#")[0]
        w_groups, x_groups, wb, ab, signed, _ = layer_matrices(module, x, w_bits, a_bits, name)

        def energy(ws) -> float:
            return simulate_groups(ws, x_groups, config, wb, ab, signed, n_threads=n_threads,
                                   output=False, name=name).total_energy

        q = np.concatenate([w.reshape(-1) for w in w_groups]).astype(np.int64)
        codes = np.asarray(np.take(level_codes(wb, config.mapping), q + level_max(wb)), dtype=np.int64)
        places = _place_values(q, wb, config.mapping)
        stored = wb - 1 if config.mapping == "differential" else wb
        base = energy(w_groups)
        price = np.zeros(wb)
        for p in range(stored):
            has = ((codes >> p) & 1).astype(bool)
            if has.any():
                moved, count, sign = np.where(has, q - places[p], q), int(has.sum()), 1.0
            else:
                probe = np.zeros(q.shape, dtype=bool)
                probe[::probe_every] = True
                moved, count, sign = np.where(probe, q + places[p], q), int(probe.sum()), -1.0
            split = np.split(moved, np.cumsum([w.size for w in w_groups])[:-1])
            changed = energy([m.reshape(w.shape).astype(w.dtype) for m, w in zip(split, w_groups)])
            price[p] = max(0.0, sign * (base - changed) / count / batch)
        prices[name] = prices.get(name, 0.0) + price
    if prices and not any(np.any(p > 0) for p in prices.values()):
        warnings.warn(f"every bit price is 0 under model {config.model!r}: its energy does not depend on the stored "
                      "bits here, so a penalty or rounding priced with it has nothing to lower"
                      + (" (NeuroSim V1.4 charges an SRAM read by its driven rows alone)"
                         if config.model == "neurosim-1.4" else ""), stacklevel=2)
    return prices


def price_unit(model: nn.Module, prices: Dict[str, np.ndarray], encoding: str, bits: int = 8) -> float:
    """The mean price of an ON cell of ``model`` now (J): the layers' level costs under ``prices``
    summed over their stored integers, divided by their ON cells in ``encoding`` (1.0 when either is
    0). Prices divided by it read as ON cells, so a penalty priced with them starts equal to the HW."""
    modules = dict(model.named_modules())
    on = price_sum = 0.0
    for name, price in prices.items():
        q, b = layer_integers(modules[name], bits, name)
        price_sum += float(level_cost(price, b, encoding)[q.reshape(-1).astype(np.int64) + level_max(b)].sum())
        on += total_hamming_weight(q, b, encoding)
    return price_sum / on if on and price_sum > 0 else 1.0
