"""Foundation kernels vs numpy and memory bandwidth, measured side by side in one run.

    python benchmarks/bench_core.py [--quick]
"""
import argparse
import sys

import hamqcore
from hamqcore.bench import core_cases, format_table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller arrays, fewer repeats")
    args = ap.parse_args()
    print(f"hamqcore {hamqcore.__version__}: isa={hamqcore.active_isa()} threads={hamqcore.get_num_threads()}")
    cases = core_cases(quick=args.quick)
    print(format_table(cases))
    return 0 if all(c.meets is not False for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
