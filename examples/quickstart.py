"""hamqcore in one page: train a small quantized CNN on scikit-learn's digits (real data shipped in
the wheel) with and without the HamQ regularizer, then compare accuracy, Hamming weight and the
crossbar energy per inference measured on test images.

    python examples/quickstart.py
"""
import time

import torch
import torch.nn as nn
from sklearn.datasets import load_digits

import hamqcore
from hamqcore.energy import CrossbarConfig, energy_reduction, estimate_energy
from hamqcore.nn import HamQRegularizer, hw_stats
from hamqcore.quant import quantize_model


def train(lam: float, x, y, train_idx, epochs: int = 12):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(16 * 64, 10))
    quantize_model(model, w_bits=8, a_bits=8, weight_mode="lsq")
    reg = HamQRegularizer(model, bits=8, lam=lam, example_input=x[:1])  # energy-weighted relaxed HW
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for epoch in range(epochs):
        order = train_idx[torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(epoch))]
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx]) + reg()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def main():
    print(f"hamqcore {hamqcore.__version__} (kernels: {hamqcore.active_isa()}, {hamqcore.get_num_threads()} threads)")
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:1400], perm[1400:]
    config = CrossbarConfig.preset("neurosim-rram-22nm")
    rows = {}
    for name, lam in (("baseline", 0.0), ("HamQ", 0.3)):
        t = time.perf_counter()
        model = train(lam, x, y, tr)
        with torch.no_grad():
            acc = (model(x[te]).argmax(1) == y[te]).float().mean().item()
        report = estimate_energy(model, x[te[:64]], config)
        stats = hw_stats(model)["total"]
        rows[name] = (acc, stats["mean_hw"], report)
        print(f"{name:>8}: trained in {time.perf_counter() - t:4.1f} s, test accuracy {100 * acc:5.2f} %, "
              f"mean HW {stats['mean_hw']:.3f}, ON cells {100 * report.on_fraction:5.2f} %, "
              f"energy {report.total_energy * 1e9:8.2f} nJ/inference")
    (a0, h0, r0), (a1, h1, r1) = rows["baseline"], rows["HamQ"]
    print(f"\nHamQ vs baseline: energy {energy_reduction(r0.total_energy, r1.total_energy):+.1f} %, "
          f"accuracy {100 * (a1 - a0):+.2f} pt, mean HW {h0:.3f} -> {h1:.3f}")
    print("\nenergy by layer (HamQ model):")
    print(r1)


if __name__ == "__main__":
    main()
