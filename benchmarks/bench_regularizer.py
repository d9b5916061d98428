"""The relaxed-HW op vs its pure-torch path, and the regularizer's overhead on a ResNet-18 step.

    python benchmarks/bench_regularizer.py [--quick]
"""
import argparse
import sys

import hamqcore
from hamqcore.bench import format_table, regularizer_cases


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(f"hamqcore {hamqcore.__version__}: isa={hamqcore.active_isa()} threads={hamqcore.get_num_threads()}")
    cases = regularizer_cases(args.quick)
    print(format_table(cases))
    step, alone = cases[-2], cases[-1]
    print(f"\nregularizer overhead: {100 * (step.ours / step.reference - 1):+.1f} % of the step measured end to end, "
          f"{100 * alone.ours / alone.reference:.1f} % for the regularizer's own forward+backward (target <= 5 %)")
    return 0 if all(c.meets is not False for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
