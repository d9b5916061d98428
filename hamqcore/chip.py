"""The chip around the subarrays, as DNN+NeuroSim V1.3 charges it: ``scope="chip"``.

NeuroSim's chip report (``Chip.cpp`` ``ChipCalculatePerformance``, ``Tile.cpp``
``TileCalculatePerformance``, ``ProcessingUnit.cpp`` ``ProcessingUnitCalculatePerformance``;
upstream github.com/neurosim/DNN_NeuroSim_V1.3, commit 388f421, ``Inference_pytorch/NeuroSIM``) adds
to its subarrays' read energy the circuits that move a layer's activations and add its partial
sums. This module ports them for NeuroSim's conventional mapping (every layer an im2col matrix, as
hamqcore maps layers; ``Param.cpp`` ``novelMapping = false``), layer-by-layer processing and its
activation on the chip (``chipActivation``, ReLU): per layer and inference,

=====================  ==========================================================  =============
component              NeuroSim's circuit (its report line)                        what it scales with
=====================  ==========================================================  =============
``pe_buffer``          the PEs' input and output registers (``DFF`` bufferInputCM,  input / output bits
                       bufferOutputCM; "buffer")
``pe_bus``             the PEs' input and output buses (``Bus`` busInputCM,         input / output bits
                       busOutputCM; "ic")
``pe_adder_tree``      the PEs' adder trees over subarray rows (``AdderTree``       vectors x row arrays
                       adderTreeCM; "accumulation")
``tile_buffer``        the tiles' input and output buffers (``Buffer``, register    input / output bits
                       files; "buffer")
``tile_htree``         the tiles' H-trees to their PEs (``HTree`` hTreeCM; "ic")    input + output bits
``tile_accumulation``  the tiles' adder trees over PEs (``AdderTree``               vectors x PE rows
                       accumulationCM; "accumulation")
``global_buffer``      the chip's global buffer (``Buffer``; "buffer")              input / output bits
``global_htree``       the chip's H-tree to its tiles (``HTree`` GhTree; "ic")      input + output bits
``global_accumulation``  the chip's adder tree over tile rows (``AdderTree``         outputs x vectors
                       Gaccumulation; "accumulation"), layers over several tiles
``activation``         the chip's ReLU units (``BitShifter`` GreLu; "other")        outputs x vectors
``max_pool``           the chip's max pooling units (``MaxPooling``; "other"), a    vectors / 4
                       layer followed by max pooling (which also quarters its
                       outputs' traffic to the global buffer)
=====================  ==========================================================  =============

None of them sees the weights: fewer ON cells change none of them (the subarray's energy, which
does, is hamqcore's simulator). The floorplan (tile and PE size, the layers' duplication across PEs
and subarrays) is NeuroSim's (``Chip.cpp`` ``ChipDesignInitialize``, ``ChipFloorPlan``,
``TileDesignCM``, ``PEDesign``, ``SubArrayDup``, ``OverallEachLayer``), and so is every count,
integer division included. The digital gates come from hamqcore's C++ core (the same DFF and adder
models its subarray periphery uses); what depends on NeuroSim's area model (wire lengths, the PE and
tile dimensions the buses and H-trees span) and its buffers' decoders is read out of NeuroSim's own
program at each floorplan (``tests/reference_data/neurosim-1.3-chip``: ``golden.json``
``instances``), so the chip scope exists where those were read: NeuroSim's defaults (128 x 128
subarrays, 5-bit multilevel sense amps, 8 columns per sense amp), its LSTP and HP roadmaps, at the
(cell bits, columns per weight, input bits) and tile geometries in :data:`GEOMETRIES`; elsewhere
:func:`chip_energy` refuses with the reason.

A layer is what NeuroSim's network file would say of it: a convolution's rows are all its input
channels times its kernel, grouped or not (NeuroSim has no grouped mapping: a depthwise layer is a
dense one of that size to its floorplan and traffic; hamqcore's subarrays still pack its groups).

Differences from NeuroSim, each deliberate: (1) NeuroSim's network file says which layers max
pooling follows; :func:`hamqcore.energy.estimate_energy` marks a layer whose output a max pooling
consumes before the next crossbar layer runs (an ``nn.MaxPool`` module, ``F.max_pool*``, the aten op of
an exported program: :func:`hamqcore.layers.capture_layer_inputs`), and charges
NeuroSim's 2 x 2 pooling whatever the module's window. (2) Where a tile maps a layer without
duplication on fewer PEs than it has, NeuroSim's ``TileCalculatePerformance`` adds the last PE's
energies again for every unused PE (its sums sit outside the ``if`` that skips them); hamqcore
charges each PE once. (3) NeuroSim's all-conventional
floorplanner stops when no layer is wider than 256 columns ("SubArray Size is too large"); hamqcore
then takes its smallest tile, 4 subarrays wide, as NeuroSim's floorplanner does for conventionally
mapped layers beside novel-mapped ones (``MAX(maxTileSizeCM, 4*numRowSubArray)``).
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from . import _core
from ._checks import as_str, check_choice, check_int

CHIP_COMPONENTS = ("pe_buffer", "pe_bus", "pe_adder_tree", "tile_buffer", "tile_htree", "tile_accumulation",
                   "global_buffer", "global_htree", "global_accumulation", "activation", "max_pool")
# NeuroSim's report lines ("buffer", "ic", "accumulation circuits", "other peripheries")
CHIP_GROUPS = {"buffer": ("pe_buffer", "tile_buffer", "global_buffer"),
               "ic": ("pe_bus", "tile_htree", "global_htree"),
               "accumulation": ("pe_adder_tree", "tile_accumulation", "global_accumulation"),
               "other": ("activation", "max_pool")}

# NeuroSim's defaults (Param.cpp) the chip constants were read at
SUBARRAY = 128            # numRowSubArray = numColSubArray
COLS_PER_ADC = 8          # numColMuxed
LEVEL_BITS = 5            # log2(levelOutput): the multilevel sense amp's 32 levels (parallelRead)
GLOBAL_BUS_MAX = 2048     # maxGlobalBusWidth
TILE_BUFFER_CORE = 32 * 32          # tileBufferCoreSizeRow x Col
GLOBAL_BUFFER = (128 * 128, 128)    # globalBufferCoreSizeRow x Col bits, its interface width
VDD = 0.85                          # Technology.cpp vdd at 22 nm (LSTP and HP)
WIRE_CAP = 0.2e-15 / 1e-6           # Bus.cpp / HTree.cpp unitLengthWireCap (F/m)

# NeuroSim's circuit constants per device roadmap ("lp": Param.cpp's LSTP default, deviceroadmap 2;
# "hp": deviceroadmap 1), each read out of its program (tests/reference_data/neurosim-1.3-chip/
# golden.json "instances": networks "small" and "hp"):
#   bus, htree   repeated wires (Bus.cpp Bus::CalculatePower, HTree.cpp HTree::CalculatePower: energy per
#                unit length (capInvInput + capInvOutput + unitLengthWireCap minDist) VDD^2 / minDist / 4):
#                the repeater's input and output capacitance and spacing as their Initialize sizes them
#                (a delay tolerance of 0 for the PEs' buses, Param.cpp's 0.1 for the H-trees)
#   decoder      the register-file buffers (Buffer.cpp, globalBufferType = tileBufferType = false): per bit
#                read, a DFF clocked once plus 1 / interface_width of a read of the row decoder; per bit
#                written, 1 / interface_width of a write of it (Buffer::CalculatePower's avgBit*Energy).
#                The decoder's (RowDecoder.cpp, REGULAR_ROW) energy per read and per write by address bits:
#                (avgBitReadDynamicEnergy - DFF) x interface_width and avgBitWriteDynamicEnergy x
#                interface_width of the program's buffers
#   max_pool     the max pooling unit (MaxPooling.cpp; its window, Chip.cpp's 2 x 2): per read, each of its
#                comparators' AND, NOR, two INVs and input-bits-wide NOR switch once (times Param.cpp's
#                control activity epsilon) and its 1-bit comparator reads half the input bits: the gates'
#                input capacitances (NAND, NOR, INV) and output capacitance (INV), the comparator's read
#                (Comparator::CalculatePower(1, 1), J); the wide NOR's, sized for the input bits, is in
#                neurosim13_chip.json
ROADMAPS = {
    "lp": dict(bus=(1.3716088075441523e-14, 1.2474870024340152e-15, 1.2092426470747967e-4),
               htree=(6.858044037720761e-15, 7.140114590729943e-16, 1.0883183823673171e-4),
               decoder={4: (5.476942370256268e-16, 1.0953884740511865e-14),
                        5: (1.1449191308188233e-15, 2.289838261637637e-14),
                        7: (4.334877165230102e-15, 8.669754330460298e-14)},
               max_pool=((6.574220400000002e-16, 6.574220400000002e-16, 6.574220400000002e-16,
                          1.805359157119734e-16), 3.447952741412049e-16)),
    "hp": dict(bus=(6.8523217600000006e-15, 1.2146327008015804e-15, 6.830803736325799e-5),
               htree=(3.4261608800000003e-15, 6.073163504007902e-16, 6.14772336269322e-5),
               decoder={4: (3.348856042731122e-16, 6.697712085462421e-15),
                        5: (6.90471174917617e-16, 1.3809423498352483e-14),
                        7: (2.584731443029018e-15, 5.1694628860579795e-14)},
               max_pool=((3.8974487200000005e-16, 3.89744872e-16, 3.8974487200000005e-16,
                          1.8053591571197344e-16), 2.3906687930278075e-16)),
}
MAX_POOL_WINDOW = 4
EPSILON = 0.05                                   # Param.cpp epsilon (validated)

# What NeuroSim's area model gives, read out of its program by
# tests/reference_data/neurosim-1.3-chip/geometries.py into neurosim13_chip.json, per floorplan (tile
# size, PE size) at (roadmap, cell bits, columns per weight, input bits): the PE's and the tile's
# height and width (m; the spans of the tile's H-tree, Tile.cpp hTreeCM, and of the chip's, GhTree) and the PE's
# input and output bus wire lengths (m; ProcessingUnit.cpp busInputCM, busOutputCM: Bus::Initialize
# over the PE's subarrays), and the max pooling unit's wide NOR's input capacitance (F).
def _load_geometries() -> Dict[Tuple[str, int, int, int, int, int], Dict[str, float]]:
    data = json.loads((Path(__file__).resolve().parent / "neurosim13_chip.json").read_text())
    fields = data["fields"]
    out = {}
    for row in data["rows"]:
        r = dict(zip(fields, row))
        out[(r["roadmap"], r["cell_bits"], r["digits"], r["a_bits"], r["tile"], r["pe"])] = {
            k: float(r[k]) for k in ("tile_height", "tile_width", "pe_height", "pe_width", "bus_in", "bus_out",
                                     "max_pool_nor")}
    return out


GEOMETRIES = _load_geometries()    # (roadmap, cell_bits, digits, a_bits, tile, pe) -> lengths (m), NOR (F)


@dataclasses.dataclass(frozen=True)
class ChipLayer:
    """One crossbar layer as NeuroSim's chip sees it (a row of its network file): ``rows`` inputs per
    output (K = input channels x kernel size), ``outputs`` (output channels), ``vectors`` input vectors
    per inference (output positions), and whether max pooling follows it (its "maxpool" column)."""

    rows: int
    outputs: int
    vectors: int
    max_pool: bool = False


@dataclasses.dataclass(frozen=True)
class Floorplan:
    """NeuroSim's floorplan of a network (``Chip.cpp`` ``ChipFloorPlan``, conventional mapping,
    layer by layer): tile and PE size (cells per side), per layer its tiles (row, column) and
    duplication (``speedUpEachLayer``), the chip's tile grid and global bus width."""

    tile: int
    pe: int
    tiles: Tuple[Tuple[int, int], ...]
    speed_up: Tuple[Tuple[int, int], ...]
    tile_grid: Tuple[int, int]
    global_bus: float


def _pow2_ceil(x: float) -> float:
    return 2.0 ** math.ceil(math.log2(x))


def floorplan(layers: Sequence[ChipLayer], digits: int) -> Floorplan:
    """NeuroSim's tile and PE size for ``layers`` of ``digits`` columns per weight, and each layer's
    tiles and duplication (ChipDesignInitialize, ChipFloorPlan, TileDesignCM, PEDesign, SubArrayDup,
    OverallEachLayer with novelMapping = false and pipeline = false)."""
    rows = [float(l.rows) for l in layers]
    cols = [float(l.outputs * digits) for l in layers]

    def tile_design(t):
        n = sum(math.ceil(r / t) * math.ceil(c / t) for r, c in zip(rows, cols))
        return n, sum(r * c for r, c in zip(rows, cols)) / (n * t * t)

    start = max(max(_pow2_ceil(c) for c in cols), 4.0 * SUBARRAY)
    tile, (n_tiles, _) = start, tile_design(start)
    best = 0.0
    t = start
    while t > 4 * SUBARRAY:
        n, u = tile_design(t)
        if u > best:
            best, tile, n_tiles = u, t, n
        t /= 2

    def pe_dup(p):
        dups, mapped = [], 0.0
        for r, c in zip(rows, cols):
            if r <= tile or c <= tile:
                n_pe = math.ceil(tile / p)
                dr = math.floor(n_pe / math.ceil(r / p)) or 1
                dc = math.floor(n_pe / math.ceil(c / p)) or 1
            else:
                dr = dc = 1
            dups.append((dr, dc))
            mapped += dr * dc * r * c
        return dups, mapped / (n_tiles * tile * tile)

    pe = tile / 2
    p = tile / 2
    while p > 2 * SUBARRAY:          # PEDesign's utilization competes with the tile's (one variable)
        _, u = pe_dup(p)
        if u > best:
            best, pe = u, p
        p /= 2
    dups, _ = pe_dup(pe)
    speed, tiles = [], []
    for (r, c), (dr, dc) in zip(zip(rows, cols), dups):
        if r <= pe or c <= pe:
            n_sub = math.ceil(pe / SUBARRAY)
            sr = math.floor(n_sub / math.ceil(r / SUBARRAY)) or 1
            sc = math.floor(n_sub / math.ceil(c / SUBARRAY)) or 1
        else:
            sr = sc = 1
        speed.append((int(dr * sr), int(dc * sc)))
        tiles.append((math.ceil(r / tile), math.ceil(c / tile)))
    grid_rows = math.ceil(math.sqrt(n_tiles))
    grid = (grid_rows, math.ceil(n_tiles / grid_rows))
    bus = len(layers) * (tile + tile / COLS_PER_ADC)      # ChipInitialize: each layer's tile interface
    while bus > GLOBAL_BUS_MAX:
        bus /= 2
    return Floorplan(int(tile), int(pe), tuple(tiles), tuple(speed), grid, bus)


def _adder_tree(roadmap: str, bits: int, trees: int, num_read: float, num_add: int) -> float:
    """AdderTree.cpp AdderTree::CalculatePower(numRead, numUnitAdd): ceil(log2 n) stages of
    floor(j / 2) adders (NeuroSim's ceil(j/2) of an int), one bit wider per stage, for each tree."""
    e, j, width = 0.0, num_add, bits
    for _ in range(math.ceil(math.log2(num_add)) if num_add > 0 else 0):
        e += _core.neurosim13_adder_energy(roadmap, width, j // 2, 1.0)
        width += 1
        j //= 2
    return e * trees * num_read


def _repeated_wire(repeater: Tuple[float, float, float]) -> float:
    """Energy per metre of a repeated wire (J/m): Bus.cpp / HTree.cpp unitLengthEnergyRep."""
    ci, co, dist = repeater
    return (ci + co + WIRE_CAP * dist) * VDD * VDD / dist * 0.25


def _htree_bit(roadmap: str, height: float, width: float, n_row: int, n_col: int) -> float:
    """HTree.cpp HTree::CalculatePower from the root to a leaf (Initialize(numRow, numCol): numStage,
    x_center), per bit: its stages' repeated wires halving from the tree's span, and the main bus."""
    rep = _repeated_wire(ROADMAPS[roadmap]["htree"])
    stages = 2 * math.ceil(math.log2(max(n_row, n_col))) + 1
    x_center = math.floor(math.log2(min(n_row, n_col)))
    if n_col - x_center < 1:
        x_center -= 1
    half = (stages - 1) // 2
    v, h = height * 2.0 ** half / 2, width * 2.0 ** half / 2
    e = 0.0
    for _ in range(half):
        v /= 2
        e += v * rep
        h /= 2
        e += h * rep
    return e + min(n_col - x_center, x_center) * width * rep


def _buffer_bits(roadmap: str, num_bit: int, width: int) -> Tuple[float, float]:
    """Energy per bit read and per bit written of a register-file Buffer of num_bit bits, width wide."""
    a = math.ceil(math.log2(math.ceil(num_bit / width)))
    decoder = ROADMAPS[roadmap]["decoder"]
    if a not in decoder:
        raise ValueError(f"scope='chip': a buffer of {num_bit} bits, {width} wide, has a {a}-bit row decoder, whose "
                         f"energy was not read out of NeuroSim (read: {sorted(decoder)} bits)")
    read, write = decoder[a]
    dff = _core.neurosim13_dff_energy(roadmap, 1.0, 1.0, False)
    return dff + read / width, write / width


def _max_pool(roadmap: str, a_bits: int, nor: float) -> float:
    """MaxPooling.cpp MaxPooling::CalculatePower per read of one pooling unit (Initialize: the window's
    comparator tree, n / 2 comparators per stage plus the odd one)."""
    comparators, n = MAX_POOL_WINDOW % 2, MAX_POOL_WINDOW
    while n:
        comparators += n // 2
        n //= 2
    (nand, nor_in, inv_in, inv_out), comparator = ROADMAPS[roadmap]["max_pool"]
    gates = ((nand + inv_out) + (nor_in + inv_out) + 2 * (inv_in + inv_out) + (nor + inv_out)) * VDD * VDD * EPSILON
    return (gates + comparator * a_bits / 2) * comparators


def _geometry(roadmap: str, cell_bits: int, digits: int, a_bits: int, tile: int, pe: int) -> Dict[str, float]:
    key = (roadmap, cell_bits, digits, a_bits, tile, pe)
    if key not in GEOMETRIES:
        def span(i):
            return f"{min(k[i] for k in GEOMETRIES)}-{max(k[i] for k in GEOMETRIES)}"
        plans = sorted({(k[4], k[5]) for k in GEOMETRIES})
        raise ValueError(f"scope='chip': NeuroSim's area model was not read out for {cell_bits}-bit cells, {digits} "
                         f"columns per weight and {a_bits}-bit inputs on {tile}x{tile} tiles of {pe}x{pe} PEs "
                         f"({roadmap!r}; its floorplan for this network); read: roadmaps "
                         f"{sorted({k[0] for k in GEOMETRIES})}, cells {sorted({k[1] for k in GEOMETRIES})} bits, "
                         f"{span(2)} columns per weight, {span(3)}-bit inputs, (tile, PE) {plans}. Add the row "
                         f"with tests/reference_data/neurosim-1.3-chip/geometries.py")
    return GEOMETRIES[key]


def chip_energy(layers: Sequence[ChipLayer], cell_bits: int, digits: int, a_bits: int,
                roadmap: str = "lp") -> Tuple[Floorplan, List[Dict[str, float]]]:
    """NeuroSim V1.3's chip-level energy (J per inference) of each of ``layers``, by component
    (:data:`CHIP_COMPONENTS`), for weights stored in ``digits`` columns of ``cell_bits``-bit cells and
    ``a_bits``-bit inputs fed bit-serially, under its ``roadmap`` ("lp" or "hp"), with its floorplan."""
    cell_bits = check_int("cell_bits", cell_bits, 1, 8)
    digits = check_int("digits", digits, 1)
    a_bits = check_int("a_bits", a_bits, 1)
    roadmap = check_choice("roadmap", as_str("roadmap", roadmap), ROADMAPS)
    layers = list(layers)
    if not layers:
        raise ValueError("scope='chip': no layer to map")
    for i, l in enumerate(layers):
        if not isinstance(l, ChipLayer):
            raise TypeError(f"layers[{i}] must be a ChipLayer, got {type(l).__name__}")
        for f in ("rows", "outputs", "vectors"):
            check_int(f"layers[{i}].{f}", getattr(l, f), 1)
        if not isinstance(l.max_pool, (bool, np.bool_)):
            raise TypeError(f"layers[{i}].max_pool must be True or False, got {l.max_pool!r}")
    plan = floorplan(layers, digits)
    geo = _geometry(roadmap, cell_bits, digits, a_bits, plan.tile, plan.pe)
    n_pe, pe = plan.tile // plan.pe, plan.pe
    n_sub = math.ceil(pe / SUBARRAY)
    dff = _core.neurosim13_dff_energy(roadmap, 1.0, 1.0, False)
    # ProcessingUnitInitialize (parallelRead): the PE's adder tree and registers
    pe_tree_bits = LEVEL_BITS + a_bits + digits + 1
    pe_trees = math.ceil(n_sub * SUBARRAY / COLS_PER_ADC)
    in_dff = a_bits * SUBARRAY
    out_dff = (SUBARRAY // COLS_PER_ADC) * (LEVEL_BITS + a_bits + digits + math.ceil(math.log2(n_sub)))
    # TileInitialize (chipActivation): the tile's adder tree, buffers and H-tree
    acc_bits = LEVEL_BITS + a_bits + digits + 1 + math.ceil(math.log2(pe / SUBARRAY))
    acc_trees = math.ceil(n_pe * SUBARRAY / COLS_PER_ADC)
    in_buf = ((n_pe * a_bits * SUBARRAY, n_pe * SUBARRAY) if n_pe * a_bits * SUBARRAY < TILE_BUFFER_CORE
              else (TILE_BUFFER_CORE, 32))
    out_bits = acc_bits * n_pe * SUBARRAY // COLS_PER_ADC
    out_buf = (out_bits, acc_bits * n_pe) if out_bits < TILE_BUFFER_CORE else (TILE_BUFFER_CORE, 32)
    in_buf_e, out_buf_e = _buffer_bits(roadmap, *in_buf), _buffer_bits(roadmap, *out_buf)
    glob_e = _buffer_bits(roadmap, *GLOBAL_BUFFER)
    tile_htree = _htree_bit(roadmap, geo["pe_height"], geo["pe_width"], n_pe, n_pe)
    global_htree = _htree_bit(roadmap, geo["tile_height"], geo["tile_width"], *plan.tile_grid)
    bus_wire = _repeated_wire(ROADMAPS[roadmap]["bus"])
    bus_in, bus_out = geo["bus_in"] * bus_wire, geo["bus_out"] * bus_wire
    # ChipInitialize: the chip's adder tree over tile rows and its ReLU units, one tree and one unit per
    # sense amp of a tile's width each
    g_bits = LEVEL_BITS + a_bits + digits + 1 + math.ceil(math.log2(math.ceil(pe / SUBARRAY) * n_pe))
    per_tile_adc = math.ceil(plan.tile / COLS_PER_ADC)
    # the adder trees' reads per input vector: ceil(numColMuxed / numColPerSynapse), integer division in
    # the PE (NeuroSim's (numInVector / numBitInput) x that is vectors x these)
    pe_reads = COLS_PER_ADC // digits
    tile_reads = math.ceil(COLS_PER_ADC / digits)

    out = []
    for l, (tr, tc), (sr, sc) in zip(layers, plan.tiles, plan.speed_up):
        e = dict.fromkeys(CHIP_COMPONENTS, 0.0)
        rows, cols, nv = l.rows, l.outputs * digits, l.vectors
        nvb = nv * a_bits               # the layer's input vectors, bit-serial (NeuroSim's tile numInVector)

        def pe_unit(dup_r, dup_c, r, c):
            # ProcessingUnitCalculatePerformance: the adder tree (where the subarrays' sums meet; once per
            # subarray block where the matrix is duplicated over part of the PE, not at all where one
            # subarray holds it whole), the registers and the buses
            if dup_r * dup_c == 1:
                trees = 1
            elif dup_r < n_sub or dup_c < n_sub:
                trees = math.ceil(r / SUBARRAY) * math.ceil(c / SUBARRAY)
            else:
                trees = 0
            e["pe_adder_tree"] += trees * _adder_tree(roadmap, pe_tree_bits, pe_trees, nv * pe_reads,
                                                      math.ceil(r / SUBARRAY))
            e["pe_buffer"] += (r * nvb // in_dff) * in_dff * dff
            e["pe_buffer"] += ((c // digits) * pe_tree_bits * nv // out_dff) * out_dff * dff
            e["pe_bus"] += r * nvb * bus_in + (c // digits) * LEVEL_BITS * nv * bus_out

        for i in range(tr):
            for j in range(tc):
                r = min(plan.tile, rows - i * plan.tile)
                c = min(plan.tile, cols - j * plan.tile)
                # TileCalculatePerformance
                if sr * sc > 1:
                    if sr >= n_pe and sc >= n_pe:
                        pe_unit(math.ceil(sr / n_pe), math.ceil(sc / n_pe), r, c)
                    else:
                        for pi in range(math.ceil(r / pe)):
                            for pj in range(math.ceil(c / pe)):
                                pe_unit(1, 1, min(pe, r - pi * pe), min(pe, c - pj * pe))
                        if math.ceil(r / pe) > 1:
                            e["tile_accumulation"] += _adder_tree(roadmap, acc_bits, acc_trees, nv * tile_reads,
                                                                  math.ceil(r / pe))
                else:
                    for pi in range(n_pe):
                        for pj in range(n_pe):
                            if pi * pe < r and pj * pe < c:
                                pe_unit(1, 1, min(pe, r - pi * pe), min(pe, c - pj * pe))
                    e["tile_accumulation"] += _adder_tree(roadmap, acc_bits, acc_trees, nv * tile_reads, n_pe)
                bits_in = (c // digits) * (1 + acc_bits) * nv
                bits_out = r * nvb
                e["tile_buffer"] += bits_in * sum(out_buf_e) + bits_out * sum(in_buf_e)
                e["tile_htree"] += (bits_out + bits_in) * tile_htree
        # ChipCalculatePerformance
        e["activation"] = math.ceil(nv * l.outputs / per_tile_adc) * per_tile_adc * a_bits * dff
        if l.max_pool:                  # plan.tile units; NeuroSim's (numInVector / window) is an int division
            reads = math.ceil((nv // MAX_POOL_WINDOW) / plan.tile)
            e["max_pool"] = _max_pool(roadmap, a_bits, geo["max_pool_nor"]) * plan.tile * reads
        if tr > 1:
            e["global_accumulation"] = _adder_tree(roadmap, g_bits, per_tile_adc, math.ceil(cols * (nv / per_tile_adc)), tr)
        bits_out = rows * a_bits * nv
        bits_in = (cols // digits) * a_bits * nv / (MAX_POOL_WINDOW if l.max_pool else 1)
        e["global_htree"] = global_htree * plan.global_bus * math.ceil((bits_out + bits_in) / plan.global_bus)
        e["global_buffer"] = bits_out * glob_e[0] + bits_in * glob_e[1]
        out.append(e)
    return plan, out


def group(energies: Dict[str, float]) -> Dict[str, float]:
    """A layer's chip components summed into NeuroSim's report lines (:data:`CHIP_GROUPS`)."""
    return {g: sum(energies[c] for c in comps) for g, comps in CHIP_GROUPS.items()}
