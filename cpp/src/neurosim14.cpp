#include "neurosim14.hpp"

#include <algorithm>
#include <cmath>

namespace hamq::neurosim14 {

namespace {

// Capacitances (F) and supply of V1.4's 22 nm periphery at Param.cpp's defaults, as its program
// computes them (formula.cpp CalculateGateCap / CalculateGateCapacitance from Technology.cpp, with
// each circuit's V1.4 transistor sizes), read out of it with gdb
// (tests/reference_data/neurosim-1.4/golden.json, "constants").
constexpr double kVdd = 0.84999999999999998;      // Technology.cpp vdd (LSTP, 22 nm)
constexpr double kCapRow1 = 1.9795916799999998e-14;   // SubArray capRow1: WL wire + SRAM access gates
constexpr double kCapCol = 9.6003602583433049e-15;    // SubArray capCol (param->columncap)
// WL switch matrix (SwitchMatrix.cpp) transmission gates
constexpr double kSwTgDrain = 4.947757109564411e-16, kSwTgGateN = 9.9613989146843427e-16,
                 kSwTgGateP = 1.31430053324534e-15;
// DFF.cpp flip-flops (the switch matrix's and the shift-adders' are sized alike)
constexpr double kDffTgDrain = 7.8554633692596003e-17, kDffTgGateN = 6.2911200000000014e-17,
                 kDffTgGateP = 8.3004630589803415e-17, kDffInvIn = 1.4591583058980342e-16,
                 kDffInvOut = 7.8554633692596003e-17;
// Mux.cpp column mux pass gates (sized for resCellAccess / (numRowParallel / 2))
constexpr double kMuxTgGateN = 2.2747552542372886e-15, kMuxTgDrain = 2.2027459312858469e-15;
// RowDecoder.cpp mux decoder (3 address bits, 4 NAND2, 8 NOR, MUX output driver)
constexpr double kDecInvIn = 6.5742204000000017e-16, kDecNandOut = 1.8081781212977416e-16,
                 kDecNorOut = 1.9463130776351199e-16, kDecDrvIn = 3.2101482729756753e-14,
                 kDecDrvOut = 2.7412185238448744e-15;
// Adder.cpp NAND2 (the same as V1.3's at LSTP 22 nm)
constexpr double kNandIn = 6.5742204000000017e-16, kNandOut = 1.8081781212977416e-16;
// MultilevelSenseAmp.cpp Initialize: the sense amp's minimum INV gate and junction capacitances
constexpr double kSaGateN = 6.2911200000000014e-17, kSaGateP = 8.3004630589803415e-17,
                 kSaJuncN = 3.7274258257744068e-17, kSaJuncP = 4.1280375434851941e-17;
// Param.cpp calibration factors (validated = true) and dumcolshared = levelOutput
constexpr double kGamma = 0.5, kDelta = 0.15, kEpsilon = 0.05, kDumColShared = kLevels;

// DFF.cpp DFF::CalculatePower (numDffPerOperation = numDff).
double dff(double num_read, double num_dff, bool validated) {
    const double v2 = kVdd * kVdd;
    double e = (kDffInvIn + kDffInvOut) * v2 * 4 * num_dff + (kDffTgGateN + kDffTgGateP) * v2 * 2 * num_dff;
    e += (kDffTgDrain * 3 + kDffInvIn) * v2 * num_dff + (kDffTgDrain + kDffInvOut) * v2 * num_dff +
         (kDffInvIn + kDffInvOut) * v2 * num_dff;
    return e * num_read * (validated ? kGamma : 1.0);
}

// Adder.cpp Adder::CalculatePower: num_adder ripple-carry adders of num_bit bits.
double adder(int num_bit, double num_adder, double num_read) {
    const double ci = kNandIn, co = kNandOut, m = num_bit - 1;
    double e = ci * 6 + co * 2 + ci * 7 * m + co * 3 * m;
    e += (co + ci) * 2 + (co + ci * 2) + (co + ci * 3) + (co + ci);
    e += (co + ci * 3) * m + (co + ci) * m + (co + ci) * 2 * m;
    return e * kVdd * kVdd * num_adder * num_read * kDelta;
}

// ShiftAdd.cpp (NONSPIKING), initialized with num_unit adders of num_bit bits and num_read_pulse.
double shift_add(int num_unit, int num_bit, int num_read_pulse, double num_read) {
    return adder(num_bit, num_unit, num_read) + dff(num_read, double(num_bit + 1 + num_read_pulse - 1) * num_unit, true);
}

// MultilevelSenseAmp.cpp GetColumnPower, current mode, LSTP, 22 nm (W): R scaled by 0.5 V / readVoltage;
// 1 uW for a column with no driven row (R = infinity). temp = 300 K: no temperature factor.
double column_power(double r) {
    if (std::isinf(r)) return 1e-6;
    r *= 0.5 / kReadVoltage;
    double p;
    if (r < 4832) p = -2.85373E-11 * r + 9.16744E-07;
    else if (r < 379269) p = -1.63133E-07 * std::log(r) + 2.1687E-06;
    else p = -5.8712E-08 * std::log(r) + 8.64648E-07;
    return p * (kLevels - 1);
}

// MultilevelSenseAmp.cpp ColumnLatency_Table, current mode, 22 nm (s); its column-capacitance term
// applies above 12.7 kOhm only, which no reference column of the default ladder reaches.
double latency_table(double r) {
    return r < 4832 ? -1.32118E-10 * std::log(r) + 1.7552E-09 : 8.02517E-15 * r + 8.51803E-10;
}

// MultilevelSenseAmp.cpp Initialize (parallel, SRAM, operationmode 2): Rref[i] = 1 / (G_start + i
// (0 - G_start) / levelOutput), G_start = numRowParallel / resCellAccess, i < levelOutput - 1.
double reference(int i) {
    const double g_start = double(kRows) / kResCellAccess;
    return 1.0 / (g_start + double(i) * (0.0 - g_start) / kLevels);
}

struct Sense {
    double latency = 0, refpower = 0, switching = 0;
};

Sense make_sense() {
    Sense s;
    // LatencyCol = max(ColumnLatency_Table(Rref[last]), ColumnLatency_Table(Rref[1]))
    s.latency = std::max(latency_table(reference(kLevels - 2)), latency_table(reference(1)));
    // "1.4 update - reference column power": the ladder's inner references, shared by dumcolshared columns
    for (int i = 1; i < kLevels - 2; ++i) s.refpower += column_power(reference(i)) / kDumColShared;
    // Column_SwitchingE (current mode), with NeuroSim's integer 1 / (levelOutput - 1) = 0 and its
    // reference_energy_peri = capRow1 / numColSubArray VDD^2 numRow (SubArray.cpp CalculatePower)
    const double vr2 = kReadVoltage * kReadVoltage, v2 = kVdd * kVdd;
    const double ref_peri = kCapRow1 / kCols * v2 * kRows;
    s.switching = kCapCol * 2 * (0 + 1 / kDumColShared) / 2 * vr2 + ref_peri / kDumColShared +
                  (kSaGateN * 2 + (kSaJuncN + kSaGateN) / (kLevels - 1) + (kSaJuncN + kSaGateN) / kDumColShared) * vr2 +
                  (kSaGateP * 2 + kSaGateN) * v2 +
                  (kSaGateP * 3 + kSaGateN * 3 + (kSaJuncP + kSaJuncN) * 3 + kSaJuncP * 1) * v2 +
                  (kSaGateP + kSaGateN) * v2;
    return s;
}

const Sense& sense() {
    static const Sense s = make_sense();
    return s;
}

}  // namespace

Periphery periphery(int digits, int pulses) {
    const double v2 = kVdd * kVdd, vr2 = kReadVoltage * kReadVoltage;
    const int mux = kColsPerAdc, units = kCols / kColsPerAdc, level_bits = 5;  // log2(levelOutput)
    Periphery p;
    // SubArray.cpp readDynamicEnergyArray = capRow1 VDD^2 numRow activityRowRead numColMuxed (plus
    // the WL buffers' caps times buffernumber, 0 at the defaults)
    p.array_per_row = kCapRow1 * v2 * mux;
    // SwitchMatrix.cpp CalculatePower(numColMuxed, ..., activityRowRead) in ROW_MODE: per driven row
    // 3 TG drains at readVoltage and a TG's gates at VDD, numColMuxed times; plus its numRow DFFs
    // (not validated)
    p.switch_per_row = (kSwTgDrain * 3 * vr2 + (kSwTgGateN + kSwTgGateP) * v2) * mux;
    p.switch_fixed = dff(mux, kRows, false);
    // Mux.cpp CalculatePower(numColMuxed) over its ceil(numCol / numColMuxed) inputs and RowDecoder.cpp
    // CalculatePower(numColMuxed, 1) of the 3-bit mux decoder, times epsilon (V1.4 does not divide
    // them by numReadPulse)
    const double mux_e = (kMuxTgGateN * units * v2 + kMuxTgDrain * 2 * units * vr2) * mux;
    const int addr = 3, nand = 4, nor = 8;
    double dec = (kDecInvIn + kDecInvIn * 2) * v2 * (addr / 2) * 2;
    dec += (kDecInvIn + kDecInvIn * (nor / 2)) * v2 * (addr - (addr / 2) * 2);
    dec += (kDecNandOut + kDecInvIn * (nor / 4)) * v2 * nand / 4;
    dec += (kDecNorOut + kDecInvIn) * v2;
    dec += (kDecNandOut + kDecDrvIn) * v2 + (kDecDrvOut + kDecDrvIn) * v2 + kDecDrvOut * v2;
    p.mux = mux_e + dec * mux * kEpsilon;
    // SubArray.cpp: shiftAddWeight.CalculatePower((numCellPerSynapse - 1) * ceil(numColMuxed /
    // numCellPerSynapse)) and shiftAddInput.CalculatePower(ceil(numColMuxed / numCellPerSynapse)),
    // both with NeuroSim's integer division inside the ceil
    if (digits > 1) p.shift_add += shift_add(units, level_bits, digits, double((digits - 1) * (mux / digits)));
    if (pulses > 1) p.shift_add += shift_add(units, level_bits + digits, pulses, double(mux / digits));
    return p;
}

double conversion_energy(int64_t driven_rows) {
    const Sense& s = sense();
    const double r = driven_rows > 0 ? kCellResistance / double(driven_rows) : INFINITY;
    return s.switching * (kLevels - 1) + std::max((column_power(r) + s.refpower) * s.latency, 0.0);
}

double column_latency() { return sense().latency; }

double mux_gate_energy() { return kMuxTgGateN * kVdd * kVdd + kMuxTgDrain * 2 * kReadVoltage * kReadVoltage; }

}  // namespace hamq::neurosim14
