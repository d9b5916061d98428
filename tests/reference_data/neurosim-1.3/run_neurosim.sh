#!/usr/bin/env bash
# The exact commands behind golden.json. NEUROSIM is a DNN+NeuroSim V1.3 binary (upstream
# github.com/neurosim/DNN_NeuroSim_V1.3, commit 388f421, Inference_pytorch/NeuroSIM) built from its
# unmodified sources with debug information (gdb reads its variables; nothing in it is changed).
# Each variant is the same sources with one line of Param.cpp changed (see ../README.md).
#   usage: NEUROSIM=/path/to/main ./run_neurosim.sh VARIANT   -> writes /tmp/neurosim_VARIANT.log
set -euo pipefail
cd "$(dirname "$0")"
python3 make_traces.py
net=NetWork.csv conv=weight_conv.csv
if [ "$1" = cb4 ]; then net=NetWork_wide.csv conv=weight_conv_wide.csv; fi  # see make_traces.py
gdb -q -batch -x subarray_energy.gdb --args "$NEUROSIM" "$net" 8 8 \
    "$conv" input_conv.csv weight_dense.csv input_dense.csv \
    weight_lowhw.csv input_lowhw.csv weight_zero.csv input_zero.csv > "/tmp/neurosim_$1.log" 2>&1
# then: python3 collect.py default=/tmp/neurosim_default.log hp=/tmp/neurosim_hp.log ...
