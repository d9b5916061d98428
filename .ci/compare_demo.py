"""Whether a demo run reproduces one seed of another, field by field: every point's record (its
validation points, accuracies, energies, HW), each method's chosen point with its test accuracy and
energies, and the baseline's reference accuracy, both tasks; checkpoint paths and timings aside
(README "After v4's run, no protocol change").

    python .ci/compare_demo.py REFERENCE/results.json NEW/results.json [SEED]

SEED (default 0) is compared in both files. Prints every difference (the first 30 in full) and exits
non-zero when there is one.
"""
from __future__ import annotations

import json
import sys

IGNORED = ("checkpoint", "seconds")   # where a run wrote its files and how long it took


def strip(o):
    if isinstance(o, dict):
        return {k: strip(v) for k, v in o.items() if k not in IGNORED}
    if isinstance(o, list):
        return [strip(v) for v in o]
    return o


def differences(a, b, path: str, out: list) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'the new run' if k in b else 'the reference'}")
            else:
                differences(a[k], b[k], f"{path}/{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            differences(x, y, f"{path}[{i}]", out)
    elif a != b:
        out.append(f"{path}: {a!r} vs {b!r}")


def main(argv) -> int:
    if len(argv) not in (2, 3):
        print(__doc__)
        return 2
    ref, new = (json.load(open(p)) for p in argv[:2])
    seed = argv[2] if len(argv) == 3 else "0"
    out: list = []
    tasks = sorted(set(ref["experiments"]) | set(new["experiments"]))
    for task in tasks:
        if task not in ref["experiments"] or task not in new["experiments"]:
            out.append(f"{task}: only in one run")
            continue
        er, en = ref["experiments"][task], new["experiments"][task]
        for part in ("runs", "chosen", "reference"):
            if seed not in er[part] or seed not in en[part]:
                out.append(f"{task}/{part}: seed {seed} missing")
                continue
            differences(strip(er[part][seed]), strip(en[part][seed]), f"{task}/{part}", out)
    for line in out[:30]:
        print(line)
    print(f"{len(out)} differences (seed {seed}, tasks {', '.join(tasks)})")
    return 1 if out else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
