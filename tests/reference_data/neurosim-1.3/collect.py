"""Turn the logs of DNN+NeuroSim V1.3 runs (its own printed report plus the per-subarray lines that
subarray_energy.gdb reads out of it) into golden.json, the numbers hamqcore's tests compare with.

    python collect.py VARIANT=LOG [VARIANT=LOG ...]
"""
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAYERS = {1: "dense", 2: "lowhw", 3: "zero"}          # NeuroSim's layerNumber (0-based) -> trace
FIELDS = ["activity", "total", "adc_line", "accum_line", "other_line", "array", "mlsa", "sar", "encoder",
          "switch_matrix", "mux", "mux_decoder", "shift_add_weight", "shift_add_input"]
PRINTED = {
    "read_dynamic_pj": r"layer(\d+)'s readDynamicEnergy is: ([-\d.e+]+)pJ",
    "buffer_pj": r"layer(\d+)'s buffer readDynamicEnergy is: ([-\d.e+]+)pJ",
    "ic_pj": r"layer(\d+)'s ic readDynamicEnergy is: ([-\d.e+]+)pJ",
}
BREAKDOWN = {"adc_pj": "ADC (or S/As and precharger for SRAM) readDynamicEnergy",
             "accum_pj": "Accumulation Circuits (subarray level: adders, shiftAdds; PE/Tile/Global level: "
                         "accumulation units) readDynamicEnergy",
             "other_pj": "Other Peripheries (e.g. decoders, mux, switchmatrix, buffers, IC, pooling and "
                         "activation units) readDynamicEnergy"}


def parse(log: str, num_read_pulse: int = 8):
    caps, sums, printed = {}, {}, {}
    current = None
    for line in log.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "SUBARRAY":
            layer = int(parts[1])
            if layer not in LAYERS:
                continue
            vals = dict(zip(FIELDS, map(float, parts[2:16])))
            s = sums.setdefault(LAYERS[layer], {k: 0.0 for k in FIELDS[1:]} | {"subarray_reads": 0,
                                                                               "driven_rows": 0})
            for k in FIELDS[1:]:
                s[k] += vals[k]
            s["subarray_reads"] += 1
            s["driven_rows"] += round(vals["activity"] * 128)
        elif parts[0] in ("TECH", "ARRAY", "SWITCH", "DFF", "MUX", "DECODER", "ENCODER", "ADDER", "SHIFTADD_DFF"):
            kv = parts[1:]
            caps[parts[0].lower()] = {kv[i]: float(kv[i + 1]) for i in range(0, len(kv), 2)}
        m = re.match(r"-+ Estimation of Layer (\d+) -+", line)
        if m:
            current = int(m.group(1)) - 1
        if "Summary" in line:
            current = None
        for key, pat in PRINTED.items():
            m = re.search(pat, line)
            if m and int(m.group(1)) - 1 in LAYERS:
                printed.setdefault(LAYERS[int(m.group(1)) - 1], {})[key] = float(m.group(2))
        for key, text in BREAKDOWN.items():
            if text in line and current in LAYERS:
                printed.setdefault(LAYERS[current], {})[key] = float(line.split(":")[-1].strip()[:-2])
    for s in sums.values():   # NeuroSim adds (mux + decoder) / numReadPulse to the subarray energy
        s["mux_and_decoder_per_pulse"] = (s.pop("mux") + s.pop("mux_decoder")) / num_read_pulse
    return {"caps": caps, "subarray_j": sums, "printed": printed}


if __name__ == "__main__":
    out = json.loads((HERE / "golden.json").read_text()) if (HERE / "golden.json").exists() else {}
    for arg in sys.argv[1:]:
        name, _, path = arg.partition("=")
        out.setdefault("variants", {})[name] = parse(Path(path).read_text())
    (HERE / "golden.json").write_text(json.dumps(out, indent=1, sort_keys=True))
