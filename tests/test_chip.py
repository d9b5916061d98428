"""The chip around the subarrays (hamqcore.chip, estimate_energy(scope="chip")) against DNN+NeuroSim
V1.3's own chip report and component calls on committed networks (tests/reference_data/
neurosim-1.3-chip: traces, commands, numbers), hand computations from its formulas, and invariants."""
import dataclasses
import json
import math
import re

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import example, given
from hypothesis import strategies as st

import xbar_reference as ref
from hamqcore import _core, chip
from hamqcore.chip import CHIP_COMPONENTS, ChipLayer, chip_energy
from hamqcore.crossbar import CrossbarConfig, simulate_layer
from hamqcore.energy import estimate_energy
from hamqcore.layers import capture_layer_inputs, from_exported
from hamqcore.quant import quantize_model

NS = ref.REF / "neurosim-1.3-chip"
GOLDEN = json.loads((NS / "golden.json").read_text())
NETWORKS = json.loads((NS / "networks.json").read_text())["networks"]
LAYERS = np.load(NS / "layers.npz")
# hamqcore's components -> NeuroSim's component instances (Chip.cpp, Tile.cpp, ProcessingUnit.cpp)
INSTANCES = {"pe_buffer": ("bufferInputCM", "bufferOutputCM"), "pe_bus": ("busInputCM", "busOutputCM"),
             "pe_adder_tree": ("adderTreeCM",), "tile_buffer": ("inputBufferCM", "outputBufferCM"),
             "tile_htree": ("hTreeCM",), "tile_accumulation": ("accumulationCM",), "global_buffer": ("globalBuffer",),
             "global_htree": ("GhTree",), "global_accumulation": ("Gaccumulation",), "activation": ("GreLu",),
             "max_pool": ("maxPool",)}


def chip_layers(net):
    return [ChipLayer(r[2] * r[3] * r[4], r[5], ((r[0] - r[3] + 1) // r[7]) * ((r[1] - r[4] + 1) // r[7]), bool(r[6]))
            for r in NETWORKS[net]["layers"]]


def digits(net):
    spec = NETWORKS[net]
    return -(-spec["w_bits"] // spec["cell_bits"])


def roadmap(net):
    return NETWORKS[net].get("roadmap", "lp")


def run(net):
    spec = NETWORKS[net]
    return chip_energy(chip_layers(net), spec["cell_bits"], digits(net), spec["a_bits"], roadmap(net))


# ------------------------------------------------------------------------------------------------
# DNN+NeuroSim V1.3's own output
# ------------------------------------------------------------------------------------------------

def test_every_network_takes_the_paths_it_was_written_for():
    """The committed networks cover every mapping path of NeuroSim's Tile / PE (else the golden test
    below would not check them): a PE and a subarray duplication, a partial one, none, several tile
    rows, both tile sizes, 1-, 2- and 4-bit cells and both roadmaps."""
    speeds, tiles, geos = set(), set(), set()
    for net in NETWORKS:
        plan, _ = run(net)
        n_pe = plan.tile // plan.pe
        geos.add((plan.tile, NETWORKS[net]["cell_bits"]))
        for (sr, sc), (tr, _) in zip(plan.speed_up, plan.tiles):
            speeds.add("none" if sr * sc == 1 else "full" if sr >= n_pe and sc >= n_pe else "partial")
            tiles.add(tr > 1)
    assert speeds == {"none", "full", "partial"} and tiles == {True, False}
    assert sum(r[6] for n in NETWORKS.values() for r in n["layers"]) == 4       # max pooling after 4 layers
    assert {t for t, _ in geos} == {512, 1024} and {c for _, c in geos} == {1, 2, 4}
    assert {roadmap(n) for n in NETWORKS} == {"lp", "hp"}


@pytest.mark.parametrize("net", list(NETWORKS))
def test_floorplan_matches_neurosim(net):
    plan, _ = run(net)
    g = GOLDEN[net]["floorplan"]
    assert (plan.tile, plan.pe) == (g["tile"], g["pe"])
    assert [r * c for r, c in plan.tiles] == g["tiles"]
    assert [r * c for r, c in plan.speed_up] == g["speed_up"]
    inst = GOLDEN[net]["instances"]
    assert plan.tile_grid == (inst["GhTree"]["numRow"], inst["GhTree"]["numCol"])
    assert plan.global_bus == inst["GhTree"]["busWidth"]


RANDOM_FLOORPLANS = json.loads((NS / "floorplans.json").read_text())["networks"]


def test_floorplan_of_random_networks_matches_neurosim():
    """NeuroSim's floorplanner on 400 seeded random networks (floorplans.py: 1-8 layers of 1-4608 rows and
    1-2048 outputs, 1-8 columns per weight, 1-, 2- and 4-bit cells; read out of its program): the tile
    and PE sizes, every layer's tiles and speed-up, the tile grid and the global bus, exactly. Where
    NeuroSim's all-conventional floorplanner stops (no layer wider than 256 columns), hamqcore takes its
    smallest tile (documented in hamqcore.chip)."""
    choices, stopped = set(), 0
    for net in RANDOM_FLOORPLANS:
        layers = [ChipLayer(r, o, 1) for r, o, _ in net["layers"]]
        plan, want = chip.floorplan(layers, net["digits"]), net["neurosim"]
        widest = max(o * net["digits"] for _, o, _ in net["layers"])
        if "stopped" in want:
            assert "SubArray Size is too large" in want["stopped"] and widest <= 256, net
            assert plan.tile == 4 * chip.SUBARRAY
            stopped += 1
            continue
        assert widest > 256, net
        got = {"tile": plan.tile, "pe": plan.pe, "tiles": [r * c for r, c in plan.tiles],
               "speed_up": [r * c for r, c in plan.speed_up], "tile_grid": list(plan.tile_grid),
               "global_bus": plan.global_bus}
        assert got == {k: want[k] for k in got}, net
        choices.add((plan.tile, plan.pe))
    assert len(RANDOM_FLOORPLANS) == 400 and 0 < stopped < 150
    assert len(choices) >= 4           # NeuroSim's (tile, PE) here: 512/256 to 4096/2048


@pytest.mark.parametrize("net", list(NETWORKS))
def test_chip_components_match_neurosim(net):
    """Every component of every layer as NeuroSim's program computed it (its CalculatePower calls,
    read out per call), to 1e-9: the floorplan, every count and integer division, the gates, wires
    and buffers."""
    _, energies = run(net)
    for i, (g, e) in enumerate(zip(GOLDEN[net]["layers"], energies)):
        assert set(e) == set(CHIP_COMPONENTS)
        for comp, names in INSTANCES.items():
            want = sum(g["components"].get(n, 0.0) for n in names)
            assert e[comp] == pytest.approx(want, rel=1e-9, abs=1e-30), (i, comp)


@pytest.mark.parametrize("net", [n for n in NETWORKS if n != "skip"])     # "skip": the next test
def test_layer_energy_matches_neurosims_chip_report(net):
    """Each layer's read energy as NeuroSim prints it (its chip report: subarrays + chip) is hamqcore's
    subarray simulation of the same integers plus the chip components, to its 6 printed digits (the
    issue's bar: 2 %); so are its report lines (buffer, IC, ADC, accumulation, other peripheries) and
    the chip's total."""
    spec = NETWORKS[net]
    cfg = CrossbarConfig.preset("neurosim-1.3", cell_bits=spec["cell_bits"], roadmap=roadmap(net))
    _, energies = run(net)
    total = 0.0
    for i, (g, e) in enumerate(zip(GOLDEN[net]["layers"], energies)):
        r = simulate_layer(LAYERS[f"{net}{i}_w"], LAYERS[f"{net}{i}_x"], cfg, spec["w_bits"], spec["a_bits"])
        assert r.total_energy == pytest.approx(g["subarray_j"], rel=1e-6)
        sub = r.energy
        grouped = chip.group(e)
        lines = {"read_dynamic_pj": r.total_energy + sum(e.values()),
                 "buffer_pj": grouped["buffer"], "ic_pj": grouped["ic"],
                 "adc_pj": sub["adc"] + sub["array"] + sub["encoder"],
                 "accum_pj": sub["shift_add"] + grouped["accumulation"],
                 "other_pj": sub["switch_matrix"] + sub["mux"] + grouped["buffer"] + grouped["ic"] + grouped["other"]}
        for key, value in lines.items():
            assert value * 1e12 == pytest.approx(g[key], rel=1e-5), (i, key)
        total += lines["read_dynamic_pj"]
    assert total * 1e12 == pytest.approx(GOLDEN[net]["chip"]["read_dynamic_pj"], rel=1e-5)


def test_neurosim_re_adds_the_last_pe_for_each_unused_pe():
    """hamqcore's deliberate difference (2) (hamqcore/chip.py), measured: a layer of 600 rows on two
    tile rows without duplication leaves the second tile's second PE row unused (88 rows); NeuroSim's
    TileCalculatePerformance adds its last PE's energies (its subarrays and its five PE-level calls)
    once more for each of those two PEs. Its printed layer energy is hamqcore's (each PE once) plus
    exactly that, to its printed digits; the components NeuroSim called are hamqcore's."""
    g = GOLDEN["skip"]["layers"][0]
    calls = g["call_list"]
    last_acc = max(i for i, (name, _) in enumerate(calls) if name == "accumulationCM")
    pe = calls[last_acc - 5:last_acc]                  # the second tile's last PE: rows 512-600, columns 256-400
    assert [name for name, _ in pe] == ["adderTreeCM", "bufferInputCM", "bufferOutputCM", "busInputCM", "busOutputCM"]
    cfg = CrossbarConfig.preset("neurosim-1.3")
    w, x = LAYERS["skip0_w"], LAYERS["skip0_x"]
    pe_sub = simulate_layer(w[64:100, 512:600], x[:, 512:600], cfg, 8, 8).total_energy   # 4 columns per weight
    _, (e,) = run("skip")
    ours = simulate_layer(w, x, cfg, 8, 8).total_energy + sum(e.values())
    assert ours * 1e12 < g["read_dynamic_pj"]
    assert (ours + 2 * (pe_sub + sum(v for _, v in pe))) * 1e12 == pytest.approx(g["read_dynamic_pj"], rel=1e-5)


def test_constants_are_the_programs():
    """The repeaters, the buffers' decoders, the pooling unit's gates and the area model's lengths in
    hamqcore.chip are the values NeuroSim's program holds (golden.json instances and floorplans, every
    network, both roadmaps)."""
    for net in NETWORKS:
        consts = chip.ROADMAPS[roadmap(net)]
        dff = _core.neurosim13_dff_energy(roadmap(net), 1, 1, False)
        inst = GOLDEN[net]["instances"]
        for name, rep in (("busInputCM", consts["bus"]), ("busOutputCM", consts["bus"]), ("hTreeCM", consts["htree"]),
                          ("GhTree", consts["htree"])):
            assert (inst[name]["capInvInput"], inst[name]["capInvOutput"], inst[name]["minDist"]) == rep
            assert inst[name]["unitLengthWireCap"] == chip.WIRE_CAP and inst[name]["tech.vdd"] == chip.VDD
        for name in ("inputBufferCM", "outputBufferCM", "globalBuffer"):
            b = inst[name]
            read, write = consts["decoder"][math.ceil(math.log2(math.ceil(b["numBit"] / b["interface_width"])))]
            assert dff + read / b["interface_width"] == pytest.approx(b["avgBitReadDynamicEnergy"], rel=1e-12)
            assert write / b["interface_width"] == pytest.approx(b["avgBitWriteDynamicEnergy"], rel=1e-12)
        assert (inst["globalBuffer"]["numBit"], inst["globalBuffer"]["interface_width"]) == chip.GLOBAL_BUFFER
        mp = inst["maxPool"]
        gates, comparator = consts["max_pool"]
        assert (mp["capNandInput"], mp["capNorInput"], mp["capInvInput"], mp["capInvOutput"]) == gates
        assert (mp["numComparator"], mp["window"]) == (3, chip.MAX_POOL_WINDOW)
        if "comparatorReadDynamicEnergy" in mp:              # read where a layer pools
            assert mp["comparatorReadDynamicEnergy"] == comparator
        spec, plan = NETWORKS[net], GOLDEN[net]["floorplan"]
        geo = chip.GEOMETRIES[(roadmap(net), spec["cell_bits"], digits(net), spec["a_bits"], plan["tile"], plan["pe"])]
        assert geo["max_pool_nor"] == mp["capNor2Input"]
        assert geo["bus_in"] == inst["busInputCM"]["wireLength"] and geo["bus_out"] == inst["busOutputCM"]["wireLength"]
        assert (geo["pe_height"], geo["pe_width"]) == (plan["pe_height"], plan["pe_width"])
        calls = GOLDEN[net]["geometry"]
        assert (geo["tile_height"], geo["tile_width"]) == (calls["CMTileheight"], calls["CMTilewidth"])


def test_the_geometry_table_is_whole():
    """neurosim13_chip.json holds every row geometries.py reads (both roadmaps, 1-, 2- and 4-bit cells,
    1-8 columns per weight, 4-8-bit inputs, both floorplans), each length positive and the tile
    larger than its PE (a truncated or hand-edited table fails here)."""
    want = {(r, c, d, a, t, p) for r in ("lp", "hp") for c in (1, 2, 4) for d in range(1, 9) for a in range(4, 9)
            for t, p in ((512, 256), (1024, 512))}
    assert set(chip.GEOMETRIES) == want
    for key, g in chip.GEOMETRIES.items():
        assert all(v > 0 for v in g.values()), key
        assert g["tile_height"] > g["pe_height"] and g["tile_width"] > g["pe_width"], key


def test_gate_bindings_are_neurosims_by_hand():
    """The bound DFF and adder models: NeuroSim's buffers' DFFs (not validated) and its adder trees'
    adders, from the committed calls (bufferInputCM: numRead x numDff flip-flops; adderTreeCM of
    "small" layer 1: one 18-bit adder per tree, 32 trees, 10 reads)."""
    g = GOLDEN["small"]["layers"]
    assert _core.neurosim13_dff_energy("lp", 2, 1024, False) == pytest.approx(g[0]["components"]["bufferInputCM"],
                                                                             rel=1e-12)
    assert _core.neurosim13_dff_energy("lp", 1, 1, True) == pytest.approx(
        0.5 * _core.neurosim13_dff_energy("lp", 1, 1, False), rel=1e-12)      # Param.cpp gamma
    assert 320 * _core.neurosim13_adder_energy("lp", 18, 1, 1) == pytest.approx(
        g[1]["components"]["adderTreeCM"], rel=1e-12)
    assert _core.neurosim13_adder_energy("lp", 18, 3, 2) == pytest.approx(
        6 * _core.neurosim13_adder_energy("lp", 18, 1, 1), rel=1e-12)
    for bad in (dict(num_read=-1.0), dict(num_dff=float("nan"))):
        args = {**dict(roadmap="lp", num_read=1.0, num_dff=1.0, validated=False), **bad}
        with pytest.raises(ValueError, match=next(iter(bad))):
            _core.neurosim13_dff_energy(**args)
    with pytest.raises(ValueError, match="num_bit"):
        _core.neurosim13_adder_energy("lp", 0, 1.0, 1.0)
    with pytest.raises(ValueError, match="roadmap"):
        _core.neurosim13_adder_energy("xp", 8, 1.0, 1.0)


# ------------------------------------------------------------------------------------------------
# NeuroSim's formulas by hand
# ------------------------------------------------------------------------------------------------

def test_adder_tree_by_hand():
    """AdderTree.cpp: ceil(log2 n) stages of floor(j / 2) adders (its ceil(j/2) of an int j), one bit
    wider per stage; so 3 inputs add 1 adder, then 0 (NeuroSim's count, not 2)."""
    a = lambda bits, n: _core.neurosim13_adder_energy("lp", bits, n, 1.0)
    assert chip._adder_tree("lp", 10, 4, 2.0, 1) == 0.0
    assert chip._adder_tree("lp", 10, 4, 2.0, 2) == pytest.approx(8 * a(10, 1), rel=1e-12)
    assert chip._adder_tree("lp", 10, 1, 1.0, 3) == pytest.approx(a(10, 1) + a(11, 0), rel=1e-12)
    assert chip._adder_tree("lp", 10, 1, 1.0, 8) == pytest.approx(a(10, 4) + a(11, 2) + a(12, 1), rel=1e-12)


@pytest.mark.parametrize("rm", ["lp", "hp"])
def test_htree_by_hand(rm):
    """HTree.cpp root to leaf, 2 x 2 units of side s: one vertical and one horizontal stage of s / 2,
    plus the main bus min(numCol - x_center, x_center) = 1 unit, each at the repeated wire's energy
    per length; 3 x 2 units: numStage = 5 (two stages, from 2 s down) and x_center = 1."""
    ci, co, dist = chip.ROADMAPS[rm]["htree"]
    rep = (ci + co + chip.WIRE_CAP * dist) * chip.VDD ** 2 / dist / 4
    s = 1e-4
    assert chip._htree_bit(rm, s, s, 2, 2) == pytest.approx((s / 2 + s / 2 + s) * rep, rel=1e-12)
    assert chip._htree_bit(rm, s, s, 3, 2) == pytest.approx((2 * (s / 2 + s / 4) + s) * rep, rel=1e-12)


def test_max_pool_by_hand():
    """MaxPooling.cpp for the 2 x 2 window: 3 comparators (2, then 1), each switching its AND, NOR, two
    INVs and wide NOR once (x epsilon) and its 1-bit comparator for half the input bits; NeuroSim's
    reads are ceil((vectors // 4) / units), its units one per tile column; the pooled layer's outputs
    cross the chip's H-tree and global buffer a quarter as often."""
    (nand, nor, inv_in, inv_out), comparator = chip.ROADMAPS["lp"]["max_pool"]
    wide = chip.GEOMETRIES[("lp", 2, 4, 8, 512, 256)]["max_pool_nor"]
    unit = 3 * (((nand + inv_out) + (nor + inv_out) + 2 * (inv_in + inv_out) + (wide + inv_out)) * chip.VDD ** 2 * 0.05
                + comparator * 8 / 2)
    assert chip._max_pool("lp", 8, wide) == pytest.approx(unit, rel=1e-12)
    for vectors, reads in ((3, 0), (4, 1), (2048, 1), (2052, 2)):
        _, (e,) = chip_energy([ChipLayer(300, 100, vectors, max_pool=True)], 2, 4, 8)
        assert e["max_pool"] == pytest.approx(unit * 512 * reads, rel=1e-12, abs=0)
    _, (plain,) = chip_energy([ChipLayer(300, 100, 64)], 2, 4, 8)
    _, (pooled,) = chip_energy([ChipLayer(300, 100, 64, max_pool=True)], 2, 4, 8)
    glob = chip._buffer_bits("lp", *chip.GLOBAL_BUFFER)[1]
    assert plain["global_buffer"] - pooled["global_buffer"] == pytest.approx(100 * 8 * 64 * 3 / 4 * glob, rel=1e-9)


@pytest.mark.parametrize("rm", ["lp", "hp"])
def test_buffer_per_bit_by_hand(rm):
    dff = _core.neurosim13_dff_energy(rm, 1, 1, False)
    read, write = chip.ROADMAPS[rm]["decoder"][5]
    assert chip._buffer_bits(rm, 1024, 32) == pytest.approx((dff + read / 32, write / 32), rel=1e-12)
    with pytest.raises(ValueError, match="2-bit row decoder"):
        chip._buffer_bits(rm, 512, 128)


# ------------------------------------------------------------------------------------------------
# Invariants
# ------------------------------------------------------------------------------------------------

layer_st = st.builds(ChipLayer, rows=st.integers(1, 3000), outputs=st.integers(1, 300), vectors=st.integers(1, 64),
                     max_pool=st.booleans())


@given(layers=st.lists(layer_st, min_size=1, max_size=5), d=st.sampled_from([2, 4]), a_bits=st.sampled_from([4, 8]),
       perm_seed=st.integers(0, 2 ** 32 - 1), rm=st.sampled_from(["lp", "hp"]))
@example(layers=[ChipLayer(1, 1, 1)], d=2, a_bits=4, perm_seed=0, rm="lp")                    # the smallest layer
@example(layers=[ChipLayer(600, 100, 4)], d=4, a_bits=8, perm_seed=0, rm="hp")                # a tile PE row unused
@example(layers=[ChipLayer(2048, 256, 3), ChipLayer(9, 1, 1)], d=4, a_bits=8, perm_seed=1, rm="lp")   # 1024 tiles
def test_chip_invariants(layers, d, a_bits, perm_seed, rm):
    """The floorplan covers every layer's matrix; every component is >= 0 and positive where NeuroSim
    always charges it (not the PE's registers: NeuroSim counts their loads by integer division, zero
    for a layer smaller than one load; not the chip's H-tree of a one-tile chip); the chip sees shapes only, so the order of the layers only
    permutes the layers' energies; more input vectors never cost less."""
    try:
        plan, energies = chip_energy(layers, 2, d, a_bits, rm)
    except ValueError as e:
        assert "was not read out" in str(e)          # a floorplan beyond the table: refused, named
        return
    for l, (tr, tc), e in zip(layers, plan.tiles, energies):
        assert tr == math.ceil(l.rows / plan.tile) and tc == math.ceil(l.outputs * d / plan.tile)
        assert all(v >= 0 for v in e.values())
        for c in ("pe_bus", "tile_buffer", "tile_htree", "global_buffer", "activation"):
            assert e[c] > 0, c
        assert (e["global_htree"] > 0) == (plan.tile_grid != (1, 1))     # a one-tile chip's H-tree has no wire
        assert (e["max_pool"] > 0) == (l.max_pool and l.vectors >= chip.MAX_POOL_WINDOW)
        assert (e["global_accumulation"] > 0) == (tr > 1 and tr // 2 > 0)
    order = np.random.default_rng(perm_seed).permutation(len(layers))
    _, permuted = chip_energy([layers[i] for i in order], 2, d, a_bits, rm)
    for j, i in enumerate(order):
        assert permuted[j] == pytest.approx(energies[i], rel=1e-12)
    more = [dataclasses.replace(l, vectors=l.vectors * 2) for l in layers]
    _, doubled = chip_energy(more, 2, d, a_bits, rm)
    for e, e2 in zip(energies, doubled):
        assert sum(e2.values()) >= sum(e.values())


def test_chip_energy_validates():
    ok = [ChipLayer(100, 100, 1)]
    with pytest.raises(TypeError, match=r"layers\[0\] must be a ChipLayer, got tuple"):
        chip_energy([(100, 100, 1)], 2, 4, 8)
    with pytest.raises(ValueError, match=r"layers\[0\].vectors must be"):
        chip_energy([ChipLayer(100, 100, 0)], 2, 4, 8)
    with pytest.raises(ValueError, match="^scope='chip': no layer to map$"):
        chip_energy([], 2, 4, 8)
    with pytest.raises(TypeError, match=r"layers\[0\].max_pool must be True or False"):
        chip_energy([ChipLayer(100, 100, 1, max_pool="yes")], 2, 4, 8)
    with pytest.raises(ValueError, match="roadmap must be one of 'lp', 'hp'"):
        chip_energy(ok, 2, 4, 8, roadmap="xp")
    with pytest.raises(TypeError, match="roadmap must be a string"):
        chip_energy(ok, 2, 4, 8, roadmap=["lp"])
    with pytest.raises(ValueError, match="3-bit inputs"):
        chip_energy(ok, 2, 4, 3)
    for args, msg in [((0, 4, 8), "cell_bits must be an integer in 1..8, got 0"),
                      ((9, 4, 8), "cell_bits must be an integer in 1..8, got 9"),
                      ((2, 0, 8), "digits must be an integer >= 1, got 0"),
                      ((2, 4, 0), "a_bits must be an integer >= 1, got 0")]:
        with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
            chip_energy(ok, *args)
    for args, name in [((2.5, 4, 8), "cell_bits"), ((2, "4", 8), "digits"), ((2, 4, None), "a_bits")]:
        with pytest.raises(TypeError, match=f"^{name} must be an integer"):
            chip_energy(ok, *args)
    # the smallest widths the checks let through reach the geometry table's own refusal
    with pytest.raises(ValueError, match="1-bit inputs"):
        chip_energy(ok, 1, 1, 1)


# ------------------------------------------------------------------------------------------------
# estimate_energy(scope="chip")
# ------------------------------------------------------------------------------------------------

class _Net(nn.Module):
    def __init__(self, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(8, 16, 3, groups=groups)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def _model(seed, groups=1):
    torch.manual_seed(seed)
    return quantize_model(_Net(groups), 8, 8).eval()


def test_estimate_energy_chip_scope():
    """Every layer gains NeuroSim's chip components (the shapes NeuroSim's network file would hold:
    K = input channels x kernel, over all groups, and the output positions); the total is the
    subarrays' plus the chip's; the chip's part does not depend on the weights (two models of the same
    shapes); the report prints and serialises it."""
    x = torch.rand(3, 8, 6, 6)
    cfg = CrossbarConfig.preset("neurosim-1.3")
    sub = estimate_energy(_model(0), x, cfg)
    r = estimate_energy(_model(0), x, cfg, scope="chip")
    assert r.scope == "chip" and r.components == tuple(cfg.components) + CHIP_COMPONENTS
    assert r.subarray_energy == pytest.approx(sub.total_energy, rel=1e-12)
    plan, want = chip_energy([ChipLayer(72, 16, 16), ChipLayer(256, 10, 1)], 2, 4, 8)
    assert r.floorplan == plan
    for row, e in zip(r.layers, want):
        assert {c: row.energy[c] for c in CHIP_COMPONENTS} == pytest.approx(e, rel=1e-12)
    assert r.total_energy == pytest.approx(sub.total_energy + sum(sum(e.values()) for e in want), rel=1e-12)
    other = estimate_energy(_model(1), x, cfg, scope="chip")
    for a, b in zip(r.layers, other.layers):
        assert {c: a.energy[c] for c in CHIP_COMPONENTS} == {c: b.energy[c] for c in CHIP_COMPONENTS}
    text = str(r)
    assert "chip scope: NeuroSim's 512x512 tiles" in text and "chip buffer nJ" in text
    d = r.to_dict()
    assert d["scope"] == "chip" and d["floorplan"]["tile"] == 512
    assert set(CHIP_COMPONENTS) <= set(d["energy_j"])
    grouped = estimate_energy(_model(0, groups=4), x, cfg, scope="chip")   # a grouped conv: all its inputs
    assert grouped.floorplan == plan
    hp = estimate_energy(_model(0), x, CrossbarConfig.preset("neurosim-1.3", roadmap="hp"), scope="chip")
    _, want_hp = chip_energy([ChipLayer(72, 16, 16), ChipLayer(256, 10, 1)], 2, 4, 8, "hp")
    for row, e in zip(hp.layers, want_hp):
        assert {c: row.energy[c] for c in CHIP_COMPONENTS} == pytest.approx(e, rel=1e-12)
    assert sum(want_hp[0].values()) < sum(want[0].values())        # HP's smaller gates and closer repeaters


class _Pooled(nn.Module):
    def __init__(self, how: str = "functional"):
        super().__init__()
        self.how = how
        self.conv1 = nn.Conv2d(4, 8, 3, padding=1)
        self.pool = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2))
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 8, 1)
        self.avg = nn.AvgPool2d(2)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.pool(self.conv1(x))                              # a module: 8 x 8 -> 4 x 4
        x = self.conv2(x)
        if self.how == "functional":
            x = torch.nn.functional.max_pool2d(x, 2)              # 4 x 4 -> 2 x 2
        elif self.how == "torch":
            x = torch.max_pool2d(x, 2)
        else:
            x = torch.nn.functional.adaptive_max_pool2d(x, 2, return_indices=True)[0]
        x = self.avg(self.conv3(x))                               # average pooling: no NeuroSim unit
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("how", ["functional", "torch", "adaptive", "exported"])
def test_estimate_energy_charges_max_pooling(how):
    """A layer whose output a max pooling consumes before the next mapped layer runs gets NeuroSim's
    pooling unit and a quarter of its output traffic, whatever runs the pooling: an nn.MaxPool
    module, F.max_pool2d, torch.max_pool2d, F.adaptive_max_pool2d, the aten op of an exported program;
    average pooling is not max pooling."""
    torch.manual_seed(0)
    x = torch.rand(2, 4, 8, 8)
    if how == "exported":   # the float model's program: the walk quantises its layers itself
        m = from_exported(torch.export.export(_Pooled("functional").eval(), (x,)))
    else:
        m = quantize_model(_Pooled(how), 8, 8).eval()
    r = estimate_energy(m, x, scope="chip")
    plan, want = chip_energy([ChipLayer(36, 8, 64, True), ChipLayer(72, 8, 16, True), ChipLayer(8, 8, 4, False),
                              ChipLayer(8, 10, 1)], 2, 4, 8)
    assert r.floorplan == plan
    for row, e in zip(r.layers, want):
        assert {c: row.energy[c] for c in CHIP_COMPONENTS} == pytest.approx(e, rel=1e-12)
    assert [row.energy["max_pool"] > 0 for row in r.layers] == [True, True, False, False]


def test_pooling_is_seen_only_during_the_capture():
    """The function mode that sees pooling is active for the walk's forward pass only: a pooling
    before the first mapped layer marks nothing, and pooling after the walk marks nothing."""
    pooled = []
    m = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(2, 2, 1), nn.Flatten(), nn.Linear(8, 3))
    capture_layer_inputs(m, torch.rand(1, 2, 4, 4), pooled=pooled)
    assert pooled == [False, False]
    torch.nn.functional.max_pool2d(torch.rand(1, 2, 4, 4), 2)
    assert pooled == [False, False]
    assert not torch.overrides._is_torch_function_mode_enabled()


def test_estimate_energy_chip_scope_refuses():
    x = torch.rand(2, 8, 6, 6)
    m = _model(0)
    with pytest.raises(ValueError, match="scope must be one of"):
        estimate_energy(m, x, scope="tile")
    with pytest.raises(TypeError, match="scope"):
        estimate_energy(m, x, scope=1)
    with pytest.raises(ValueError, match="model='neurosim-1.3'"):
        estimate_energy(m, x, CrossbarConfig.preset("mnsim-2.0"), scope="chip")
    with pytest.raises(ValueError, match=r"^scope='chip' reproduces NeuroSim's chip at its adc='multilevel' \(its "
                                         r"buffers, adder trees and wires are sized for it\), got adc='sar'$"):
        estimate_energy(m, x, CrossbarConfig.preset("neurosim-1.3", adc="sar"), scope="chip")
    # other array and sense-amp sizes: the neurosim-1.3 model itself refuses them
    with pytest.raises(ValueError, match="adc_bits=6 is not available in model 'neurosim-1.3'"):
        estimate_energy(m, x, CrossbarConfig.preset("neurosim-1.3", adc_bits=6), scope="chip")
    with pytest.raises(ValueError, match="cols_per_adc=4 is not available in model 'neurosim-1.3'"):
        estimate_energy(m, x, CrossbarConfig.preset("neurosim-1.3", cols_per_adc=4), scope="chip")
    mixed = _model(0)
    mixed.fc.w_quant.bits = 6                # a 6-bit last layer in an 8-bit network
    with pytest.raises(ValueError, match=r"one network precision.*\(6, 8\), \(8, 8\)"):
        estimate_energy(mixed, x, scope="chip")
