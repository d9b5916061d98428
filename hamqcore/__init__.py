"""hamqcore: Hamming-weight quantization (HamQ) for analog compute-in-memory crossbars.

The top level is the numpy API over the C++ kernels (it never imports torch); the torch layers are
``hamqcore.ops`` (custom ops), ``hamqcore.quant`` (QAT layers), ``hamqcore.nn`` (the regularizer),
``hamqcore.energy`` (model energy), ``hamqcore.rounding`` (gradient-free HW-aware rounding).
``hamqcore.crossbar`` is the numpy-level crossbar simulator.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    from . import _core  # noqa: F401
except ImportError as e:  # pragma: no cover - only without a build
    raise ImportError(
        "hamqcore's compiled core (hamqcore._core) is missing or does not load: install the package "
        "(pip install .) so that CMake builds it; importing hamqcore from a source tree that was never "
        f"built does not work ({e})"
    ) from e

from .kernels import (
    ENCODINGS,
    active_isa,
    available_isas,
    get_num_threads,
    hamming_weight,
    hardware_threads,
    hw_histogram,
    level_max,
    openmp_enabled,
    pack_bitplanes,
    relaxed_hw,
    relaxed_hw_penalty,
    scaled_hw_penalty,
    set_num_threads,
    total_hamming_weight,
    unpack_bitplanes,
)



def coverage(model, include=None, exclude=()):
    """Which of a torch model's weight tensors hamqcore maps onto crossbars, and why the others are not
    (:func:`hamqcore.layers.coverage`; print it). Imports torch."""
    from .layers import coverage as _coverage

    return _coverage(model, include, exclude)


try:
    __version__ = version("hamqcore")
except PackageNotFoundError:  # pragma: no cover - a build without metadata
    __version__ = "unknown"

__all__ = [
    "ENCODINGS",
    "active_isa",
    "available_isas",
    "coverage",
    "get_num_threads",
    "hamming_weight",
    "hardware_threads",
    "hw_histogram",
    "level_max",
    "openmp_enabled",
    "pack_bitplanes",
    "relaxed_hw",
    "relaxed_hw_penalty",
    "scaled_hw_penalty",
    "set_num_threads",
    "total_hamming_weight",
    "unpack_bitplanes",
]
