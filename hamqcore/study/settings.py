"""The paper's operating points and the demo's settings: every number the study is run with, in one
file, fixed before its results (README "The demo" explains each choice)."""
from __future__ import annotations

from typing import Dict

# HamQ (IEEE Sensors J. 2024), abstract: the energy change against the unregularised model and the
# accuracy change that came with it, at the paper's weight width.
PAPER = {
    "resnet18": {"energy_pct": -54.0, "accuracy_pt": -1.5, "bits": 8},
    "ds_cnn": {"energy_pct": -42.7, "accuracy_pt": -3.5, "bits": 6},
}

# The accountings the demo reports side by side. "neurosim-1.3+periphery" is NeuroSim's subarray with
# hamqcore's HW-aware periphery (README "HW-aware periphery"): per-column ADC resolution, empty
# columns, mux cycles and arrays skipped. It, the plain "neurosim-1.3" and "bitline" use the demo's
# mapping, the differential one (HamQ's encoding: a weight's ON cells are popcount(|q|)), with
# DEMO_CELL_BITS per experiment: the D = ceil((bits-1) / cell_bits) digits of a weight must divide
# the 8 columns a NeuroSim sense amp reads in turn, so that each mux cycle holds one digit position
# and a digit position HamQ empties frees whole cycles (8-bit: 2-bit cells, D = 4, NeuroSim's own
# cell; 6-bit: 4-bit cells, D = 2; the kernels take 1, 2 or 4-bit cells, and 1- or 2-bit cells give
# D = 5 or 3). "neurosim-1.3 (offset)" is NeuroSim's default mapping (offset,
# 2-bit cells) and "mnsim-2.0" MNSIM's default configuration, both unmodified.
DEMO_CELL_BITS = {"resnet18": 2, "ds_cnn": 4}
ACCOUNTINGS: Dict[str, Dict[str, object]] = {
    "neurosim-1.3": dict(preset="neurosim-1.3", mapping="differential"),
    "neurosim-1.3+periphery": dict(preset="neurosim-1.3", mapping="differential", adc_bits="auto", skip_empty=True),
    "neurosim-1.3 (offset)": dict(preset="neurosim-1.3"),
    "mnsim-2.0": dict(preset="mnsim-2.0"),
    "bitline": dict(preset="bitline", mapping="differential"),
}
HEADLINE = "neurosim-1.3+periphery"

# The demo's training settings (README "The demo" explains them): both the baseline and every HamQ
# model use the same quantizer (LSQ steps started from the standard max grid, recalibrated during
# warm-up, then learned at step_lr_scale x the lr), seed, data and schedule; the task is learned first
# (warm-up), then lam ramps up. The HamQ penalty prices each bit by its energy under the headline
# accounting (weighting="crossbar", re-priced every epoch on DEMO_PRICE_INPUTS training inputs).
DEMO = {
    "resnet18": dict(model="resnet18", data="mnist5k", w_bits=8, a_bits=8, width=16, epochs=8,
                     batch_size=64, lr=2e-3, warmup_epochs=2, ramp_epochs=2, step_lr_scale=0.3,
                     encoding="differential", threads=2),
    "ds_cnn": dict(model="ds_cnn", data="spoken_keywords", w_bits=6, a_bits=6, epochs=16, batch_size=64, lr=3e-3,
                   warmup_epochs=4, ramp_epochs=3, step_lr_scale=0.3, encoding="differential", threads=2),
}
DEMO_LAMS = {"resnet18": (1.0, 3.0, 10.0), "ds_cnn": (1.0, 3.0, 10.0)}
DEMO_QUICK = {
    "resnet18": dict(width=8, epochs=3, train_subset=1200, warmup_epochs=1, ramp_epochs=1),
    "ds_cnn": dict(epochs=5, quick_data=True, warmup_epochs=1, ramp_epochs=2),
}
DEMO_QUICK_LAMS = {"resnet18": (1.0, 3.0), "ds_cnn": (1.0, 3.0)}
