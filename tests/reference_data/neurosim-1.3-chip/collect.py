"""Turn the logs of run_neurosim.sh into golden.json: per network, NeuroSim's printed per-layer and chip
report, its subarray energy per layer (the sum of its SubArray::CalculatePower calls), every chip-level
component call (arguments and energies) summed per layer and component, and the component instances'
parameters (read from the program).   usage: python3 collect.py NET=LOG ..."""
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
PRINTED = {
    "read_dynamic_pj": r"layer(\d+)'s readDynamicEnergy is: ([\d.e+-]+)pJ",
    "buffer_pj": r"layer(\d+)'s buffer readDynamicEnergy is: ([\d.e+-]+)pJ",
    "ic_pj": r"layer(\d+)'s ic readDynamicEnergy is: ([\d.e+-]+)pJ",
}
BREAKDOWN = r"----------- (ADC|Accumulation Circuits|Other Peripheries) .*readDynamicEnergy is : ([\d.e+-]+)pJ"
KEYS = {"ADC": "adc_pj", "Accumulation Circuits": "accum_pj", "Other Peripheries": "other_pj"}


def kv(text):
    return {k: float(v) for k, v in re.findall(r"([\w.>-]+)=([-\d.e+]+)", text)}


def collect(log):
    text = Path(log).read_text()
    layers = defaultdict(dict)
    for key, pat in PRINTED.items():
        for l, v in re.findall(pat, text):
            layers[int(l) - 1][key] = float(v)
    # the breakdown lines follow each layer's estimate in order; the last three are the chip's
    current = -1
    for line in text.splitlines():
        m = re.match(r"-+ Estimation of Layer (\d+) -+", line)
        if m:
            current = int(m.group(1)) - 1
        if line.startswith("------------------------------ Summary"):
            current = None
        m = re.match(BREAKDOWN, line)
        if m and current is not None:
            layers[current][KEYS[m.group(1)]] = float(m.group(2))
    comps = defaultdict(lambda: defaultdict(float))
    calls = defaultdict(lambda: defaultdict(int))
    call_list = defaultdict(list)     # every call in order: [component, energy]
    for line in text.splitlines():
        if line.startswith("CALL "):
            parts = line.split()
            l, name = int(parts[1].split("=")[1]), parts[2]
            d = kv(line)
            comps[l][name] += d["readDynamicEnergy"] + d.get("writeDynamicEnergy", 0.0)
            calls[l][name] += 1
            call_list[l].append([name, d["readDynamicEnergy"] + d.get("writeDynamicEnergy", 0.0)])
        elif line.startswith("SUBARRAY "):
            d = kv(line)
            layers[int(d["layer"])]["subarray_j"] = d["energy"]
    instances = {}
    for line in text.splitlines():
        if line.startswith("INSTANCE "):
            parts = line.split()
            instances[parts[1]] = {"class": parts[2], **kv(" ".join(parts[3:]))}
    for line in text.splitlines():     # the buffers' energy per bit read and written (Buffer::CalculatePower)
        if line.startswith("CALL ") and "avgBitReadDynamicEnergy" in line:
            d = kv(line)
            instances[line.split()[2]].update(avgBitReadDynamicEnergy=d["avgBitReadDynamicEnergy"],
                                              avgBitWriteDynamicEnergy=d["avgBitWriteDynamicEnergy"])
    for line in text.splitlines():     # the max pooling unit's 1-bit comparator read
        if line.startswith("CALL ") and "comparator.readDynamicEnergy" in line:
            instances["maxPool"]["comparatorReadDynamicEnergy"] = kv(line)["comparator.readDynamicEnergy"]
    pe_area = kv(re.search(r"PEAREA (.*)", text).group(1))
    section = text[text.index("# of tile used for each layer"):text.index("FloorPlan Done")]
    tiles = [int(v) for v in re.findall(r"layer\d+: (\d+)\n", section.split("Speed-up")[0])]
    speed = [int(v) for v in re.findall(r"layer\d+: (\d+)\n", section.split("Speed-up")[1].split("Utilization")[0])]
    floorplan = {"tile": int(re.search(r"Mapped Tile Storage Size: (\d+)x", text).group(1)),
                 "pe": int(re.search(r"Conventional PE Storage Size: (\d+)x", text).group(1)),
                 "tiles": tiles, "speed_up": speed, "pe_height": pe_area["height"], "pe_width": pe_area["width"]}
    params = {k: v for k, v in re.findall(r"PARAM (?:param->)?(\w+)=([-\d.e+]+)", text)}
    geometry = dict(re.findall(r"GEOMETRY (\w+)=([-\d.e+]+)", text))
    chip = {k: float(v) for k, v in (("read_dynamic_pj", re.search(r"Chip total readDynamicEnergy is: ([\d.e+-]+)pJ", text).group(1)),)}
    return {
        "layers": [dict(layers[l], components={k: comps[l][k] for k in sorted(comps[l])},
                        calls={k: calls[l][k] for k in sorted(calls[l])}, call_list=call_list[l])
                   for l in sorted(layers)],
        "chip": chip,
        "floorplan": floorplan,
        "instances": instances,
        "params": {k: float(v) for k, v in params.items()},
        "geometry": {k: float(v) for k, v in geometry.items()},
    }


if __name__ == "__main__":
    out = {name: collect(log) for name, log in (a.split("=", 1) for a in sys.argv[1:])}
    (HERE / "golden.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
