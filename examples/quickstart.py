"""hamqcore in one page: train a small quantized ResNet on scikit-learn's digits (real data shipped in
the wheel) with and without the HamQ regularizer, then compare accuracy, Hamming weight and the
crossbar energy per inference measured on test images.

    python examples/quickstart.py
"""
import torch

import hamqcore
from hamqcore import data
from hamqcore.energy import CrossbarConfig, energy_reduction, estimate_energy
from hamqcore.nn import hw_stats
from hamqcore.train import TrainConfig, train


def main():
    print(f"hamqcore {hamqcore.__version__} (kernels: {hamqcore.active_isa()}, {hamqcore.get_num_threads()} threads)")
    digits = data.digits()
    config = CrossbarConfig.preset("neurosim-rram-22nm")
    rows = {}
    for name, lam in (("baseline", 0.0), ("HamQ", 1.0)):
        # 8-bit weights and activations on a fixed per-channel grid; lam = 0 for the first epoch,
        # then ramped up (hamqcore.train documents the schedule)
        cfg = TrainConfig(model="resnet18", width=8, data="digits", w_bits=8, a_bits=8, lam=lam, epochs=6,
                          warmup_epochs=1, ramp_epochs=2)
        result = train(cfg, dataset=digits, progress=False)
        report = estimate_energy(result.model, torch.from_numpy(digits.test.x[:64]), config)
        stats = hw_stats(result.model)["total"]
        rows[name] = (result.test_accuracy, stats["mean_hw"], report)
        print(f"{name:>8}: test accuracy {100 * result.test_accuracy:5.2f} %, mean HW {stats['mean_hw']:.3f}, "
              f"ON cells {100 * report.on_fraction:5.2f} %, energy {report.total_energy * 1e9:8.2f} nJ/inference")
    (a0, h0, r0), (a1, h1, r1) = rows["baseline"], rows["HamQ"]
    print(f"\nHamQ vs baseline: energy {energy_reduction(r0.total_energy, r1.total_energy):+.1f} %, "
          f"accuracy {100 * (a1 - a0):+.2f} pt, mean HW {h0:.3f} -> {h1:.3f}")
    print("\nenergy by layer (HamQ model):")
    print(r1)


if __name__ == "__main__":
    main()
