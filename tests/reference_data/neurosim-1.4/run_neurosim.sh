#!/usr/bin/env bash
# The exact commands behind golden.json. NEUROSIM is a DNN+NeuroSim V1.4 binary (upstream
# github.com/neurosim/DNN_NeuroSim_V1.4, commit ac828e6, Inference_pytorch/NeuroSIM) built from its
# unmodified sources with debug information: make CXXFLAGS="-fopenmp -O0 -g -std=c++0x -w". Its
# Param.cpp is used as it is (the defaults: SRAM, conventionalParallel, 22 nm LSTP).
#   usage: NEUROSIM=/path/to/main ./run_neurosim.sh VARIANT   -> writes /tmp/neurosim14_VARIANT.log
# VARIANT w8a8 reads ../neurosim-1.3's 8-bit traces; w6a4 and w3a1 the traces make_traces.py writes.
set -euo pipefail
cd "$(dirname "$0")"
v=$1
if [ "$v" = w8a8 ]; then
    d=../neurosim-1.3 net=NetWork.csv bits="8 8"
    files="$d/weight_conv.csv $d/input_conv.csv $d/weight_dense.csv $d/input_dense.csv $d/weight_lowhw.csv $d/input_lowhw.csv $d/weight_zero.csv $d/input_zero.csv"
    net=$d/$net
else
    python3 make_traces.py
    net=NetWork_$v.csv bits="${v:1:1} ${v:3}"
    files=""
    for l in conv dense lowhw zero; do files="$files weight_${v}_$l.csv input_${v}_$l.csv"; done
fi
# arguments: network, synapse bits, input bits, numRowSubArray, numRowParallel (= rows: its default
# full-parallel read), then a weight and an input trace per layer
gdb -q -batch -x subarray_energy.gdb --args "$NEUROSIM" "$net" $bits 128 128 $files > "/tmp/neurosim14_$v.log" 2>&1
# then: python3 collect.py w8a8=/tmp/neurosim14_w8a8.log w6a4=/tmp/neurosim14_w6a4.log w3a1=/tmp/neurosim14_w3a1.log
