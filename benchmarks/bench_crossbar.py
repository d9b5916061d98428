"""Crossbar simulator vs a numpy/BLAS path (same outputs), and the ResNet-18 energy estimate time.

    python benchmarks/bench_crossbar.py [--quick]
"""
import argparse
import sys

import hamqcore
from hamqcore.bench import crossbar_cases, format_table, resnet18_energy_time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(f"hamqcore {hamqcore.__version__}: isa={hamqcore.active_isa()} threads={hamqcore.get_num_threads()}")
    cases = crossbar_cases(args.quick)
    print(format_table(cases))
    t = resnet18_energy_time()
    ok = t <= 0.5
    print(f"\nResNet-18 (CIFAR, 32x32) energy estimate, 8b/8b, one image: {t:.3f} s (target <= 0.5 s){'' if ok else '  MISS'}")
    return 0 if ok and all(c.meets is not False for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
