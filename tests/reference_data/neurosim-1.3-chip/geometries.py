"""Read what NeuroSim's area model gives the chip's wires at each floorplan hamqcore's chip scope uses
(hamqcore/neurosim13_chip.json): the PE's and the tile's height and width (the spans of the tile's and
the chip's H-trees) and the PE's bus lengths, per (roadmap, cell bits, columns per weight, input bits,
tile, PE); and the input capacitance of the max pooling unit's input-bits-wide NOR (MaxPooling.cpp, sized
by its area model for the input bits).

For each, a one-layer network that NeuroSim's floorplanner maps onto that tile and PE size is written
and the program (NEUROSIM_CB1 / CB2 / CB4: builds of the same sources with `novelMapping = false;`
and `cellBit = 1 / 2 / 4;` in Param.cpp; NEUROSIM_HP_CB1 / CB2 / CB4 with `deviceroadmap = 1;` too) is run under gdb with chip_components.py in geometry-only
mode (it stops at the first ChipCalculatePerformance, before any trace is read: the traces are
empty). NeuroSim's synapse precision is columns x cell bits, its input precision the input bits.

Run:  NEUROSIM_CB1=... NEUROSIM_CB2=... NEUROSIM_CB4=... NEUROSIM_HP_CB1=... (CB2, CB4) python geometries.py
"""
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parents[2] / "hamqcore" / "neurosim13_chip.json"
ROADMAPS = {"lp": "NEUROSIM_CB", "hp": "NEUROSIM_HP_CB"}     # Param.cpp deviceroadmap 2 (default) / 1
CELLS = (1, 2, 4)
DIGITS = range(1, 9)
A_BITS = range(4, 9)
# (tile, PE): a one-layer network (rows, columns) NeuroSim maps onto it (ChipFloorPlan, PEDesign)
FLOORPLANS = {(512, 256): (128, 400), (1024, 512): (128, 1000)}


def read(roadmap, cell, digits, a_bits, tile, pe):
    rows, cols = FLOORPLANS[(tile, pe)]
    outputs = -(-cols // digits)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "net.csv").write_text(f"1,1,{rows},1,1,{outputs},0,1\n")
        (d / "w.csv").write_text("")
        (d / "x.csv").write_text("")
        env = dict(os.environ, CHIP_GEOMETRY_ONLY="1")
        log = subprocess.run(
            ["gdb", "-q", "-batch", "-ex", "set pagination off", "-ex", "set confirm off", "-x",
             str(HERE / "chip_components.py"), "-ex", "run", "--args", os.environ[f"{ROADMAPS[roadmap]}{cell}"],
             str(d / "net.csv"), str(digits * cell), str(a_bits), str(d / "w.csv"), str(d / "x.csv")],
            capture_output=True, text=True, env=env, cwd=d).stdout
    geo = {k: float(v) for k, v in re.findall(r"GEOMETRY (\w+)=([-\d.e+]+)", log)}
    pe_area = dict(re.findall(r"(height|width)=([-\d.e+]+)", re.search(r"PEAREA (.*)", log).group(1)))
    inst = {m.group(1): dict(re.findall(r"([\w.]+)=([-\d.e+]+)", m.group(2)))
            for m in re.finditer(r"INSTANCE (\w+) \w+ (.*)", log)}
    params = dict(re.findall(r"PARAM param->(\w+)=([-\d.e+]+)", log))
    assert (geo["desiredTileSizeCM"], geo["desiredPESizeCM"]) == (tile, pe), (cell, digits, a_bits, geo)
    assert float(params["numColPerSynapse"]) == digits and float(params["cellBit"]) == cell
    return {"roadmap": roadmap, "cell_bits": cell, "digits": digits, "a_bits": a_bits, "tile": tile, "pe": pe,
            "tile_height": geo["CMTileheight"], "tile_width": geo["CMTilewidth"],
            "pe_height": float(pe_area["height"]), "pe_width": float(pe_area["width"]),
            "bus_in": float(inst["busInputCM"]["wireLength"]), "bus_out": float(inst["busOutputCM"]["wireLength"]),
            "max_pool_nor": float(inst["maxPool"]["capNor2Input"])}


if __name__ == "__main__":
    rows = [read(r, c, d, a, t, p) for r in ROADMAPS for c in CELLS for d in DIGITS for a in A_BITS
            for (t, p) in FLOORPLANS]
    fields = list(rows[0])
    OUT.write_text("{\"source\": \"tests/reference_data/neurosim-1.3-chip/geometries.py\",\n\"fields\": "
                   + json.dumps(fields) + ",\n\"rows\": [\n"
                   + ",\n".join(json.dumps([r[f] for f in fields]) for r in rows) + "\n]}\n")
