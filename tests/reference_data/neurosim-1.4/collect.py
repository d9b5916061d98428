"""Turn the logs of DNN+NeuroSim V1.4 runs (its printed report plus the SUBARRAY and constant lines that
subarray_energy.gdb reads out of it) into golden.json, and its printed report into report_VARIANT.txt.

    python collect.py VARIANT=LOG [VARIANT=LOG ...]

The reports leave out what changes from run to run (its run time, gdb's process line), so a rerun of
run_neurosim.sh and this script reproduces every file here byte for byte.
"""
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAYERS = {1: "dense", 2: "lowhw", 3: "zero"}          # NeuroSim's layerNumber (0-based) -> trace
FIELDS = ["activity", "total", "adc_line", "accum_line", "other_line", "array", "mlsa", "sar", "encoder",
          "switch_matrix", "mux", "mux_decoder", "shift_add_weight", "shift_add_input", "adder", "dff"]
PRINTED = {"read_dynamic_pj": r"layer(\d+)'s readDynamicEnergy is: ([-\d.e+]+)pJ"}
BREAKDOWN = {"adc_pj": "ADC (or S/As and precharger for SRAM) readDynamicEnergy",
             "accum_pj": "Accumulation Circuits (subarray level: adders, shiftAdds; PE/Tile/Global level: "
                         "accumulation units) readDynamicEnergy",
             "other_pj": "Other Peripheries (e.g. decoders, mux, switchmatrix, buffers, IC, pooling and "
                         "activation units) readDynamicEnergy"}
CONSTANT_LINES = ("TECH", "ARRAY", "SENSE", "SWITCH", "SWDFF", "MUX", "DECODER", "SAW", "SAWDFF", "SAI")


def parse(log: str):
    constants, sums, printed, rref = {}, {}, {}, []
    current = None
    for line in log.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "SUBARRAY":
            layer = int(parts[1])
            if layer not in LAYERS:
                continue
            vals = dict(zip(FIELDS, map(float, parts[2:18])))
            s = sums.setdefault(LAYERS[layer], {k: 0.0 for k in FIELDS[1:]} | {"subarray_reads": 0,
                                                                               "driven_rows": 0, "columns": 0})
            for k in FIELDS[1:]:
                s[k] += vals[k]
            s["subarray_reads"] += 1
            s["driven_rows"] += round(vals["activity"] * 128)
            s["columns"] += int(parts[18])
        elif parts[0] == "RREF":
            rref.append(float(parts[2]))
        elif parts[0] in CONSTANT_LINES and parts[0].lower() not in constants:
            kv = parts[1:]
            constants[parts[0].lower()] = {kv[i]: float(kv[i + 1]) for i in range(0, len(kv), 2)}
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
    constants["rref"] = rref
    return {"constants": constants, "subarray_j": sums, "printed": printed}


if __name__ == "__main__":
    out = json.loads((HERE / "golden.json").read_text()) if (HERE / "golden.json").exists() else {}
    for arg in sys.argv[1:]:
        name, _, path = arg.partition("=")
        text = Path(path).read_text()
        out.setdefault("variants", {})[name] = parse(text)
        start = text.find("-------------------------------------- Hardware Performance")
        report = [ln for ln in text[max(start, 0):].splitlines(keepends=True)
                  if not ln.startswith(("SUBARRAY", "RREF", "[Inferior", "Total Run-time") + CONSTANT_LINES)]
        (HERE / f"report_{name}.txt").write_text("".join(report))
    (HERE / "golden.json").write_text(json.dumps(out, indent=1, sort_keys=True))
