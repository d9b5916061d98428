#!/usr/bin/env bash
# The exact commands behind golden.json. NEUROSIM_CB1 / CB2 / CB4 are DNN+NeuroSim V1.3 binaries
# (upstream github.com/neurosim/DNN_NeuroSim_V1.3, commit 388f421, Inference_pytorch/NeuroSIM) built
# with debug information from its sources with two lines of Param.cpp changed: `novelMapping = false;`
# (every layer conventionally mapped, as hamqcore maps layers) and `cellBit = 1;` / `2;` (its default)
# / `4;`; NEUROSIM_HP_CB1 / CB2 / CB4 the same with `deviceroadmap = 1;` (HP) as well. gdb runs
# chip_components.py, which only reads the program's variables.
#   usage: ./run_neurosim.sh NET   -> writes /tmp/neurosim_chip_NET.log
set -euo pipefail
cd "$(dirname "$0")"
python3 make_traces.py
read -r cell w_bits a_bits roadmap < <(python3 -c "import json; n = json.load(open('networks.json'))['networks']['$1']
print(n['cell_bits'], n['w_bits'], n['a_bits'], n.get('roadmap', 'lp'))")
bin="NEUROSIM_CB$cell"
if [ "$roadmap" = hp ]; then bin="NEUROSIM_HP_CB$cell"; fi
n=$(wc -l < "NetWork_$1.csv")
args=()
for ((i = 0; i < n; i++)); do args+=("weight_$1$i.csv" "input_$1$i.csv"); done
gdb -q -batch -ex "set pagination off" -ex "set confirm off" -x chip_components.py -ex run -ex quit \
    --args "${!bin}" "NetWork_$1.csv" "$w_bits" "$a_bits" "${args[@]}" > "/tmp/neurosim_chip_$1.log" 2>&1
# then: python3 collect.py small=/tmp/neurosim_chip_small.log wide=... cb4=... cb1=... hp=... skip=...
