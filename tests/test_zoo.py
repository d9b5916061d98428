"""The model zoo of issue 22: timm's ResNet-18, MobileNetV2, EfficientNet-B0 and ViT-tiny (random
init, no download, 32x32 inputs) through quantize -> regularize (HW falls) -> estimate_energy ->
crossbar_forward (a lossless crossbar equals the digital model) -> hw_aware_round (held-out error
reported). The small nn.TransformerEncoder of the issue is tests/test_models.py's TokenEncoder.

timm imports torchvision, whose PyPI wheel is a CUDA build that does not import beside the CPU
torch this project installs: where timm cannot be imported the module is skipped and pytest prints
this reason (pytest -rs). The same steps run on this project's own transcriptions of MobileNetV2
and a BERT-like encoder in tests/test_models.py, which need no optional dependency.
"""
import pytest
import torch

timm = pytest.importorskip("timm", reason="timm is optional and needs an importable torchvision (the PyPI "
                                          "torchvision wheel does not import beside the CPU torch)")

import hamqcore  # noqa: E402
from hamqcore.crossbar import CrossbarConfig  # noqa: E402
from hamqcore.energy import crossbar_forward, estimate_energy  # noqa: E402
from hamqcore.nn import HamQRegularizer, hw_stats  # noqa: E402
from hamqcore.quant import quantize_model  # noqa: E402
from hamqcore.rounding import hw_aware_round  # noqa: E402

LOSSLESS = CrossbarConfig.preset("bitline")
ZOO = {
    "resnet18": {},
    "mobilenetv2_100": {},
    "efficientnet_b0": {},
    "vit_tiny_patch16_224": {"img_size": 32, "patch_size": 4},
}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_a_timm_model_runs_every_walk(name):
    torch.manual_seed(0)
    model = quantize_model(timm.create_model(name, pretrained=False, num_classes=10, **ZOO[name]))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        model.train()(x)                       # the activation quantizers' ranges from a batch
    cov = hamqcore.coverage(model)
    assert cov.covered_fraction >= 0.99, str(cov)

    model.train()
    reg = HamQRegularizer(model, lam=1.0, weighting="params")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = hw_stats(model)["total"]["mean_hw"]
    for _ in range(10):
        opt.zero_grad()
        reg().backward()
        opt.step()
    assert hw_stats(model)["total"]["mean_hw"] < before

    model.eval()
    report = estimate_energy(model, x[:1], CrossbarConfig.preset("neurosim-1.3"))
    assert report.total_energy > 0 and report.coverage.covered_fraction >= 0.99
    with torch.no_grad():
        digital = model(x)
    on_xbar = crossbar_forward(model, x, LOSSLESS)
    assert float((on_xbar - digital).norm() / digital.norm()) < 1e-4

    rounded, stats = hw_aware_round(model, torch.randn(16, 3, 32, 32), lam=0.01)
    assert "output_error_heldout" in stats["total"]
    assert all("heldout_error_after" in s for n, s in stats.items() if n != "total")
