"""hamqcore: Hamming-weight quantization (HamQ) for analog compute-in-memory crossbars."""
from ._api import (
    active_isa,
    available_isas,
    get_num_threads,
    hamming_weight,
    hardware_threads,
    hw_histogram,
    openmp_enabled,
    pack_bitplanes,
    relaxed_hw,
    relaxed_hw_penalty,
    scaled_hw_penalty,
    set_num_threads,
    total_hamming_weight,
    unpack_bitplanes,
    ENCODINGS,
)

__version__ = "0.1.0"
__all__ = [
    "ENCODINGS",
    "active_isa",
    "available_isas",
    "get_num_threads",
    "hamming_weight",
    "hardware_threads",
    "hw_histogram",
    "openmp_enabled",
    "pack_bitplanes",
    "relaxed_hw",
    "relaxed_hw_penalty",
    "scaled_hw_penalty",
    "set_num_threads",
    "total_hamming_weight",
    "unpack_bitplanes",
]
