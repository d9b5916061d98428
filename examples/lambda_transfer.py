"""How far one lam moves different architectures, and what target= does instead (README "Any model").

For each model (random init, quantized to 8 bits with LSQ steps, the steps set by one forward pass):
the HamQ penalty alone (weighting="params": lam x the mean relaxed HW over all weights) for STEPS
steps at lam = 1 with SGD (lr 1) and with Adam (lr 1e-3), then Adam with HamQRegularizer(target=0.6);
prints the mean HW of the stored integers before and after. No data and no task loss: this isolates
what lam does to each architecture's weights. Run: python examples/lambda_transfer.py (about a minute on 2 cores).
"""
import sys
from pathlib import Path

import torch

from hamqcore.nn import HamQRegularizer, hw_stats
from hamqcore.quant import quantize_model
from hamqcore.study.models import ds_cnn, resnet18

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_models import MobileNetV2, TokenEncoder  # noqa: E402  (torchvision's MobileNetV2, a BERT-like encoder)

STEPS = 20


def models():
    yield "ResNet-18 (CIFAR)", lambda: resnet18(), torch.randn(4, 3, 32, 32)
    yield "MobileNetV2", lambda: MobileNetV2(), torch.randn(4, 3, 32, 32)
    yield "DS-CNN-S", lambda: ds_cnn(), torch.randn(4, 1, 49, 10)
    yield "BERT-like encoder", lambda: TokenEncoder(), torch.randint(0, 40, (4, 12))


def run(make, x, opt_name="adam", **reg_kw):
    torch.manual_seed(0)
    model = quantize_model(make())
    model.train()
    with torch.no_grad():
        model(x)                                     # LSQ steps and activation ranges from one batch
    before = hw_stats(model)["total"]["mean_hw"]
    reg = HamQRegularizer(model, lam=1.0, weighting="params", **reg_kw)
    opt = (torch.optim.Adam(model.parameters(), lr=1e-3) if opt_name == "adam"
           else torch.optim.SGD(model.parameters(), lr=1.0))
    for _ in range(STEPS):
        opt.zero_grad()
        reg().backward()
        opt.step()
    return before, hw_stats(model)["total"]["mean_hw"], reg


def main():
    print(f"{'model':<20} {'params':>9} {'HW before':>9} {'SGD, lam=1':>17} {'Adam, lam=1':>17} "
          f"{'Adam, target=0.6':>26}")
    for name, make, x in models():
        n = sum(p.numel() for p in make().parameters())
        b, s1, _ = run(make, x, "sgd")
        _, a1, _ = run(make, x)
        _, a2, reg = run(make, x, target=0.6)
        pct = lambda a: f"{a:>7.3f} ({100 * (a - b) / b:+6.1f} %)"  # noqa: E731
        print(f"{name:<20} {n:>9} {b:>9.3f} {pct(s1)} {pct(a1)} {pct(a2)}, lam {reg.lam:.2g}")


if __name__ == "__main__":
    main()
