# gdb -x: records DNN+NeuroSim V1.3's chip-level component calls (their arguments and energies), the
# subarray energy per layer, and the component instances' parameters, while the unmodified program runs.
# With CHIP_GEOMETRY_ONLY=1 in the environment: only the instances and the floorplan's geometry, at the
# first ChipCalculatePerformance call (before any weight file is read), then the program is stopped.
import os

import gdb

GEOMETRY_ONLY = os.environ.get("CHIP_GEOMETRY_ONLY") == "1"

STATE = {"layer": -1, "energy": False, "dumped": False}
NAMES = {}
GLOBALS = ["adderTreeCM", "busInputCM", "busOutputCM", "bufferInputCM", "bufferOutputCM", "inputBufferCM",
           "outputBufferCM", "hTreeCM", "accumulationCM", "globalBuffer", "GhTree", "Gaccumulation", "GreLu",
           "maxPool", "reLuCM", "sigmoidCM", "Gsigmoid"]
FIELDS = {
    "HTree": ["numRow", "numCol", "numStage", "x_center", "busWidth", "minDist", "capInvInput", "capInvOutput",
              "unitLengthWireCap", "tech.vdd"],
    "Bus": ["numRow", "numCol", "busWidth", "wireLength", "numRepeater", "minDist", "capInvInput", "capInvOutput",
            "unitLengthWireCap", "tech.vdd"],
    "DFF": ["numDff"],
    "AdderTree": ["numSubcoreRow", "numAdderBit", "numAdderTree", "numStage"],
    "BitShifter": ["numUnit", "numBit", "numDff"],
    "Buffer": ["numBit", "interface_width", "SRAM"],
    "MaxPooling": ["numBit", "window", "numComparator", "numMaxPooling", "capNandInput", "capNorInput", "capNor2Input",
                   "capInvInput", "capInvOutput"],
}
CLASS_OF = {}


def ev(expr):
    return gdb.parse_and_eval(expr)


def num(expr):
    v = ev(expr)
    try:
        return float(v)
    except gdb.error:
        return float(int(v.cast(gdb.lookup_type("int"))))


def dump_instances():
    for g in GLOBALS:
        try:
            p = int(ev("(long)" + g))
        except gdb.error:
            continue
        if not p:
            continue
        t = str(ev(g).dereference().dynamic_type)
        CLASS_OF[g] = t
        vals = []
        for f in FIELDS.get(t, []):
            try:
                vals.append("%s=%.17g" % (f, num("%s->%s" % (g, f))))
            except gdb.error:
                vals.append("%s=?" % f)
        print("INSTANCE %s %s %s" % (g, t, " ".join(vals)))
    for v in ("param->numBitInput", "param->numColPerSynapse", "param->cellBit", "param->levelOutput",
              "param->parallelRead", "param->chipActivation", "param->reLu", "param->novelMapping", "param->pipeline",
              "param->numColMuxed", "param->synapseBit", "globalBusWidth", "numBufferCore", "numInBufferCore",
              "numOutBufferCore"):
        print("PARAM %s=%.17g" % (v, num(v)))


class Fin(gdb.FinishBreakpoint):
    def __init__(self, name, cls, args, this):
        super().__init__(gdb.newest_frame(), internal=True)
        self.name, self.cls, self.args, self.this = name, cls, args, this

    def stop(self):
        fields = ["readDynamicEnergy"]
        if self.cls == "Buffer":
            fields += ["writeDynamicEnergy", "avgBitReadDynamicEnergy", "avgBitWriteDynamicEnergy"]
        if self.cls == "MaxPooling":       # its 1-bit comparator's read (Comparator::CalculatePower(1, 1))
            fields += ["comparator.readDynamicEnergy"]
        vals = ["%s=%.17g" % (f, float(ev("((%s*)%d)->%s" % (self.cls, self.this, f)))) for f in fields]
        print("CALL layer=%d %s %s %s" % (STATE["layer"], self.name, self.args, " ".join(vals)))
        return False

    def out_of_scope(self):
        pass


class Entry(gdb.Breakpoint):
    def __init__(self, spec, cls):
        super().__init__(spec, internal=True)
        self.cls = cls

    def stop(self):
        if not STATE["energy"]:
            return False
        if not NAMES:
            for g in GLOBALS:
                try:
                    p = int(ev("(long)" + g))
                except gdb.error:
                    continue
                if p:
                    NAMES[p] = g
        fr = gdb.newest_frame()
        this = int(fr.read_var("this"))
        if this not in NAMES:
            return False
        args = []
        for sym in fr.block():
            if sym.is_argument and sym.name != "this":
                args.append("%s=%s" % (sym.name, fr.read_var(sym)))
        Fin(NAMES[this], self.cls, " ".join(args), this)
        return False


class SubFin(gdb.FinishBreakpoint):
    def __init__(self, this):
        super().__init__(gdb.newest_frame(), internal=True)
        self.this = this

    def stop(self):
        e = float(ev("((SubArray*)%d)->readDynamicEnergy" % self.this))
        SUB[STATE["layer"]] = SUB.get(STATE["layer"], 0.0) + e
        CNT[STATE["layer"]] = CNT.get(STATE["layer"], 0) + 1
        return False

    def out_of_scope(self):
        pass


SUB, CNT = {}, {}


class SubEntry(gdb.Breakpoint):
    def stop(self):
        if STATE["energy"]:
            SubFin(int(gdb.newest_frame().read_var("this")))
        return False


class Layer(gdb.Breakpoint):
    def stop(self):
        fr = gdb.newest_frame()
        if STATE["layer"] >= 0 and STATE["energy"]:
            pass
        STATE["layer"] = int(fr.read_var("layerNumber"))
        STATE["energy"] = not bool(fr.read_var("CalculateclkFreq"))
        if (STATE["energy"] or GEOMETRY_ONLY) and not STATE["dumped"]:
            STATE["dumped"] = True
            dump_instances()
            for a in ("desiredTileSizeCM", "desiredPESizeCM", "CMTileheight", "CMTilewidth"):
                print("GEOMETRY %s=%.17g" % (a, float(fr.read_var(a))))
            if GEOMETRY_ONLY:
                gdb.execute("kill")
                gdb.execute("quit")
        return False


class Exit(gdb.Breakpoint):
    def stop(self):
        for l in sorted(SUB):
            print("SUBARRAY layer=%d energy=%.17g calls=%d" % (l, SUB[l], CNT[l]))
        return False


class PEAreaFin(gdb.FinishBreakpoint):
    def __init__(self, h, w):
        super().__init__(gdb.newest_frame(), internal=True)
        self.h, self.w = h, w

    def stop(self):
        if not STATE.get("pe_area"):
            STATE["pe_area"] = True
            print("PEAREA height=%.17g width=%.17g" % (float(ev("*(double*)%d" % self.h)),
                                                       float(ev("*(double*)%d" % self.w))))
        return False

    def out_of_scope(self):
        pass


class PEArea(gdb.Breakpoint):
    """The conventionally mapped PE's height and width (ProcessingUnitCalculateArea, NMpe = false): the
    span of the tile's H-tree."""

    def stop(self):
        fr = gdb.newest_frame()
        if not bool(fr.read_var("NMpe")) and not STATE.get("pe_area"):
            PEAreaFin(int(fr.read_var("height")), int(fr.read_var("width")))
        return False


Layer("ChipCalculatePerformance", internal=True)
PEArea("ProcessingUnitCalculateArea", internal=True)
SubEntry("SubArray::CalculatePower", internal=True)
for cls in ["AdderTree", "Buffer", "Bus", "DFF", "HTree", "BitShifter", "MaxPooling", "Sigmoid"]:
    Entry("%s::CalculatePower" % cls, cls)
Exit("exit", internal=True)
