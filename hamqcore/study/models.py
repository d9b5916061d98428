"""The paper's models: CIFAR ResNet-18 and the DS-CNN keyword spotter ("Hello Edge")."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn

from ..quant import quantize_model


def _maybe_quantize(model: nn.Module, quantize: Optional[Tuple[int, int]]) -> nn.Module:
    if quantize is None:
        return model
    if not (isinstance(quantize, (tuple, list)) and len(quantize) == 2):
        raise ValueError(f"quantize must be a (w_bits, a_bits) pair, got {quantize!r}")
    return quantize_model(model, *quantize)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR ResNet-18: 3x3 stem, no max-pool, basic blocks [2, 2, 2, 2] of width w, 2w, 4w, 8w."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 64):
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        layers, cin = [], width
        for i, w in enumerate(widths):
            layers.append(nn.Sequential(BasicBlock(cin, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)))
            cin = w
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def resnet18(num_classes: int = 10, in_channels: int = 3, width: int = 64,
             quantize: Optional[Tuple[int, int]] = None) -> nn.Module:
    for name, v in (("num_classes", num_classes), ("in_channels", in_channels), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be an integer, got {v!r}")
        if v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return _maybe_quantize(ResNet18(num_classes, in_channels, width), quantize)


DS_CNN_SIZES = {  # channels, DS blocks, first conv stride, first DS block stride
    "S": (64, 4, (2, 2), (1, 1)),
    "M": (172, 4, (2, 1), (2, 2)),
    "L": (276, 5, (2, 1), (2, 2)),
}


class DSCNN(nn.Module):
    """DS-CNN (Zhang et al., "Hello Edge", 2017): a 10x4 conv then depthwise-separable blocks
    (3x3 depthwise + 1x1 pointwise, each with BN and ReLU), average pool, linear. Input: (N, 1, 49, 10) MFCC."""

    def __init__(self, size: str = "S", num_classes: int = 12):
        super().__init__()
        ch, blocks, s0, s1 = DS_CNN_SIZES[size]
        self.conv1 = nn.Conv2d(1, ch, (10, 4), s0, (5, 1), bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        layers = []
        for i in range(blocks):
            stride = s1 if i == 0 else (1, 1)
            layers += [
                nn.Conv2d(ch, ch, 3, stride, 1, groups=ch, bias=False), nn.BatchNorm2d(ch), nn.ReLU(inplace=True),
                nn.Conv2d(ch, ch, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(inplace=True),
            ]
        self.blocks = nn.Sequential(*layers)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ch, num_classes)

    def forward(self, x):
        x = self.blocks(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def ds_cnn(size: str = "S", num_classes: int = 12, quantize: Optional[Tuple[int, int]] = None) -> nn.Module:
    if not isinstance(size, str):
        raise TypeError(f"size must be a string, got {size!r}")
    if size not in DS_CNN_SIZES:
        raise ValueError(f"size must be one of 'S', 'M', 'L', got {size!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(f"num_classes must be an integer, got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return _maybe_quantize(DSCNN(size, num_classes), quantize)
