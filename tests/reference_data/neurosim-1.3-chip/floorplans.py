"""NeuroSim's floorplan of random networks (floorplans.json): what its floorplanner (ChipDesignInitialize,
ChipFloorPlan, TileDesignCM, PEDesign, SubArrayDup, OverallEachLayer; novelMapping = false, pipeline =
false) chooses for each, read out of its program, so that hamqcore.chip.floorplan is tested on many
more choices than the six golden networks make (tests/test_chip.py
test_floorplan_of_random_networks_matches_neurosim).

Each network (seeded: 1-8 layers, 1-4608 rows, 1-2048 outputs, in half of them all near the largest, 1-8 columns per weight with 1-, 2- or
4-bit cells) is written as NeuroSim's network file and its program (NEUROSIM_CB1 / CB2 / CB4, the builds
run_neurosim.sh describes) runs under gdb with chip_components.py in geometry-only mode: it prints its
floorplan and stops at the first ChipCalculatePerformance, before any trace is read (the traces are
empty). Recorded: the tile and PE sizes, the tiles and speed-up of each layer and its utilization as
printed, the global H-tree's tile grid and bus width; or, where NeuroSim's floorplanner stops, its
message.

Run:  NEUROSIM_CB1=... NEUROSIM_CB2=... NEUROSIM_CB4=... python floorplans.py
"""
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
N_NETWORKS = 400


def network(rng):
    cell = int(rng.choice([1, 2, 4]))
    digits = int(rng.integers(1, 8 // cell + 1))
    # per network, the largest rows and outputs a layer may have: all-small networks, wide ones, and
    # between (the floorplanner's tile candidates start at the widest layer's power of two)
    # between (the floorplanner's tile candidates start at the widest layer's power of two); in half
    # of them every layer is near the largest (large tiles win only there)
    row_max, out_max = int(rng.choice([64, 300, 1200, 4608])), int(rng.choice([40, 300, 1024, 2048]))
    low = 0.75 if rng.random() < 0.5 else 0.0
    layers = []
    for _ in range(int(rng.integers(1, 9))):
        layers.append([int(rng.integers(max(1, int(low * row_max)), row_max + 1)),
                       int(rng.integers(max(1, int(low * out_max)), out_max + 1)), 0])
    return {"cell_bits": cell, "digits": digits, "a_bits": int(rng.integers(4, 9)), "layers": layers}


def run(net):
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        # one input position per layer: the rows are all input channels of a 1 x 1 kernel
        (d / "net.csv").write_text("".join(f"1,1,{r},1,1,{o},{p},1\n" for r, o, p in net["layers"]))
        (d / "w.csv").write_text("")
        (d / "x.csv").write_text("")
        args = [str(d / f) for _ in net["layers"] for f in ("w.csv", "x.csv")]
        env = dict(os.environ, CHIP_GEOMETRY_ONLY="1")
        log = subprocess.run(
            ["gdb", "-q", "-batch", "-ex", "set pagination off", "-ex", "set confirm off", "-x",
             str(HERE / "chip_components.py"), "-ex", "run", "--args", os.environ[f"NEUROSIM_CB{net['cell_bits']}"],
             str(d / "net.csv"), str(net["digits"] * net["cell_bits"]), str(net["a_bits"]), *args],
            capture_output=True, text=True, env=env, cwd=d).stdout
    if "FloorPlan Done" not in log:
        stop = re.search(r"(SubArray Size is too large[^\n]*|ERROR[^\n]*)", log)
        return {"stopped": stop.group(1).strip() if stop else log[-400:]}
    section = log[log.index("# of tile used for each layer"):log.index("FloorPlan Done")]
    tiles, speed, util = (section.split("Speed-up")[0], section.split("Speed-up")[1].split("Utilization")[0],
                          section.split("Utilization")[1])
    gh = dict(re.findall(r"(numRow|numCol|busWidth)=([-\d.e+]+)", re.search(r"INSTANCE GhTree (.*)", log).group(1)))
    return {"tile": int(re.search(r"Mapped Tile Storage Size: (\d+)x", log).group(1)),
            "pe": int(re.search(r"Conventional PE Storage Size: (\d+)x", log).group(1)),
            "tiles": [int(v) for v in re.findall(r"layer\d+: (\d+)\n", tiles)],
            "speed_up": [int(v) for v in re.findall(r"layer\d+: (\d+)\n", speed)],
            "utilization": [float(v) for v in re.findall(r"layer\d+: ([\d.e+-]+)\n", util)],
            "tile_grid": [int(float(gh["numRow"])), int(float(gh["numCol"]))], "global_bus": float(gh["busWidth"])}


if __name__ == "__main__":
    rng = np.random.default_rng(20261207)
    nets = [network(rng) for _ in range(N_NETWORKS)]
    for net in nets:
        net["neurosim"] = run(net)
    (HERE / "floorplans.json").write_text(
        "{\"source\": \"tests/reference_data/neurosim-1.3-chip/floorplans.py\",\n\"networks\": [\n"
        + ",\n".join(json.dumps(n) for n in nets) + "\n]}\n")
