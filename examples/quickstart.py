"""hamqcore in one page: train a small quantized ResNet on scikit-learn's digits (real data shipped in
the wheel) with and without the HamQ regularizer, compare accuracy, Hamming weight and crossbar
energy per inference on test images, then lower the baseline's ON cells without training
(HW-aware rounding).

    python examples/quickstart.py
"""
import torch

import hamqcore
from hamqcore.study import data
from hamqcore.crossbar import CrossbarConfig
from hamqcore.energy import energy_reduction, estimate_energy
from hamqcore.nn import hw_stats
from hamqcore.rounding import hw_aware_round
from hamqcore.study.train import TrainConfig, evaluate, train


def main():
    print(f"hamqcore {hamqcore.__version__} (kernels: {hamqcore.active_isa()}, {hamqcore.get_num_threads()} threads)")
    digits = data.digits()
    # NeuroSim V1.3's subarray (its own numbers), differential mapping, with the HW-aware periphery
    config = CrossbarConfig.preset("neurosim-1.3", mapping="differential", adc_bits="auto", skip_empty=True)
    x_test = torch.from_numpy(digits.test.x[:64])
    rows, models = {}, {}
    for name, lam in (("baseline", 0.0), ("HamQ", 1.0)):
        # 8-bit weights (a learned LSQ step started from the max|w| grid) and activations; lam = 0 for
        # the first epoch, then ramped up (hamqcore.study.train documents the schedule)
        cfg = TrainConfig(model="resnet18", width=8, data="digits", w_bits=8, a_bits=8, lam=lam, epochs=6,
                          warmup_epochs=1, ramp_epochs=2)
        result = train(cfg, dataset=digits, progress=False)
        report = estimate_energy(result.model, x_test, config)
        stats = hw_stats(result.model)["total"]
        rows[name], models[name] = (result.test_accuracy, stats["mean_hw"], report), result.model
        print(f"{name:>8}: test accuracy {100 * result.test_accuracy:5.2f} %, mean HW {stats['mean_hw']:.3f}, "
              f"ON cells {100 * report.on_fraction:5.2f} %, energy {report.total_energy * 1e9:8.2f} nJ/inference")
    (a0, h0, r0), (a1, h1, r1) = rows["baseline"], rows["HamQ"]
    print(f"\nHamQ vs baseline: energy {energy_reduction(r0.total_energy, r1.total_energy):+.1f} %, "
          f"accuracy {100 * (a1 - a0):+.2f} pt, mean HW {h0:.3f} -> {h1:.3f}")
    # no training budget: round the baseline's weights to low-HW levels on 128 training inputs
    rounded, stats = hw_aware_round(models["baseline"], torch.from_numpy(digits.train.x[:128]), lam=0.01)
    rr = estimate_energy(rounded, x_test, config)
    print(f"HW-aware rounding of the baseline: HW {stats['total']['hw_change_pct']:+.1f} %, energy "
          f"{energy_reduction(r0.total_energy, rr.total_energy):+.1f} %, accuracy "
          f"{100 * (evaluate(rounded, digits.test.x, digits.test.y) - a0):+.2f} pt")
    print("\nenergy by layer (HamQ model):")
    print(r1)


if __name__ == "__main__":
    main()
