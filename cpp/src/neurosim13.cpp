#include "neurosim13.hpp"

#include <cmath>

namespace hamq::neurosim13 {

namespace {

// Capacitances (F) and supply of the 22 nm periphery circuits exactly as NeuroSim V1.3 computes
// them (formula.cpp CalculateGateCap / CalculateGateCapacitance from Technology.cpp's 22 nm
// parameters, with each circuit's own transistor sizes), read out of its program at Param.cpp's
// defaults (tests/reference_data/neurosim-1.3/golden.json, "caps"). LP = deviceroadmap 2 (LSTP),
// HP = deviceroadmap 1.
struct Caps {
    double vdd;           // Technology.cpp vdd
    double feature;       // Technology.cpp featureSize (m)
    double wl_per_col;    // SubArray capRow2 / numCol: WL wire (0.2 fF/um over 12 F) + access gate
    double inv_in;        // minimum INV / NAND2 input (DFF, decoder, encoder, adder)
    double inv_out;       // minimum INV output (= minimum TG drain)
    double tg_drain;      // DFF / switch-matrix transmission gate drain
    double tg_gate_n, tg_gate_p;
    double nand_out;      // NAND2 output (decoder, encoder, adder)
    double nor_out;       // decoder NOR output
    double drv_in, drv_out;     // decoder output driver INV
    double nand_lg_out;   // encoder's (levels/2)-input NAND output
    double mux_tg_gate_n, mux_tg_drain;  // column mux pass gates (sized from the default device)
};

constexpr Caps kLP = {0.85, 22e-9, 5.311865841646674e-14 / 128, 6.574220400000002e-16,
                      1.805359157119734e-16, 1.805359157119734e-16, 2.8344566367933344e-16,
                      3.7397637632066673e-16, 1.8081781212977416e-16, 1.94631307763512e-16,
                      2.9183166117960683e-16, 1.0764652582745186e-16, 9.280288512486296e-16,
                      3.060083063793184e-16, 1.909695104885037e-16};
constexpr Caps kHP = {0.85, 22e-9, 1.9382735758222224e-14 / 128, 3.8974487200000005e-16,
                      1.8053591571197344e-16, 1.8053591571197344e-16, 1.8243376987234046e-16,
                      2.0731110212765958e-16, 1.847774484932885e-16, 1.911697307427229e-16,
                      1.5935632e-16, 1.030550789674745e-16, 9.36987875477275e-16,
                      1.8243376987234046e-16, 1.8053591571197344e-16};

// Param.cpp calibration factors (validated = true).
constexpr double kGamma = 0.5;     // DFF switching activity in shift-add / accumulators
constexpr double kDelta = 0.15;    // adder switching activity
constexpr double kEpsilon = 0.05;  // control circuits (decoder, encoder)

// DFF.cpp DFF::CalculatePower: numDff flip-flops clocked numRead times, all passing data.
double dff(const Caps& c, double num_read, double num_dff, bool validated) {
    const double v2 = c.vdd * c.vdd;
    double e = (c.inv_in + c.inv_out) * v2 * 4 * num_dff;                  // clock INVs
    e += (c.tg_gate_n + c.tg_gate_p) * v2 * 2 * num_dff;                   // clock TGs
    e += (c.tg_drain * 3 + c.inv_in) * v2 * num_dff;                       // D input side
    e += (c.tg_drain + c.inv_out) * v2 * num_dff;                          // feedback side
    e += (c.inv_in + c.inv_out) * v2 * num_dff;                            // Q output side
    return e * num_read * (validated ? kGamma : 1.0);
}

// Adder.cpp Adder::CalculatePower: num_adder ripple-carry adders of num_bit bits.
double adder(const Caps& c, int num_bit, double num_adder, double num_read) {
    const double ci = c.inv_in, co = c.nand_out, v2 = c.vdd * c.vdd, m = num_bit - 1;
    double e = ci * 6 + co * 2 + ci * 7 * m + co * 3 * m;                        // 0 -> 1 transitions
    e += (co + ci) * 2 + (co + ci * 2) + (co + ci * 3) + (co + ci);               // first-stage hidden
    e += (co + ci * 3) * m + (co + ci) * m + (co + ci) * 2 * m;                   // later stages
    return e * v2 * num_adder * num_read * kDelta;
}

// ShiftAdd.cpp (NONSPIKING): num_unit adders of num_bit bits and their shift registers.
double shift_add(const Caps& c, int num_unit, int num_bit, int num_read_pulse, double num_read) {
    const double num_dff = double(num_bit + 1 + num_read_pulse - 1) * num_unit;
    return adder(c, num_bit, num_unit, num_read) + dff(c, num_read, num_dff, true);
}

}  // namespace

Periphery periphery(Roadmap r, AdcKind adc, int digits, int pulses, double v_read) {
    const Caps& c = r == Roadmap::HP ? kHP : kLP;
    const double v2 = c.vdd * c.vdd, vr2 = v_read * v_read;
    const int mux = kColsPerAdc, units = kCols / kColsPerAdc;  // numColMuxed, ADCs per subarray
    const int level_bits = 5;                                  // log2(levelOutput)
    Periphery p;
    // SubArray.cpp readDynamicEnergyArray: capBL = lengthCol * 0.2 fF/um, lengthCol = rows * 4 F
    // (1T1R cell height); selected BLs at V_read and the selected WLs at VDD, numColMuxed times.
    const double cap_bl = kRows * 4 * c.feature * 0.2e-15 / 1e-6;
    p.array_fixed = cap_bl * vr2 * std::ceil(double(kCols) / mux) * mux;
    p.array_per_row = c.wl_per_col * kCols * v2 * mux;
    // NewSwitchMatrix.cpp CalculatePower(numColMuxed, 0, activityRowRead): per selected row one TG
    // passes V_access, two pass V_read (5 drain loads), three open at VDD; plus numRow DFFs.
    p.switch_per_row = (c.tg_drain * 2 * kAccessVoltage * kAccessVoltage + c.tg_drain * 5 * vr2 +
                        (c.tg_gate_n + c.tg_gate_p) * 3 * v2) * mux;
    p.switch_fixed = dff(c, mux, kRows, false);
    // Mux.cpp CalculatePower(numColMuxed): every input's pass gate opens; RowDecoder.cpp
    // CalculatePower(numColMuxed, 1) of the log2(8) = 3-bit mux decoder (4 NAND2, 8 NOR), times
    // epsilon; SubArray.cpp divides both by numReadPulse.
    const double mux_e = (c.mux_tg_gate_n * units * v2 + c.mux_tg_drain * 2 * units * vr2) * mux;
    const int addr = 3, nand = 4, nor = 8;
    double dec = (c.inv_in + c.inv_in * 2) * v2 * (addr / 2) * 2;                    // address INVs
    dec += (c.inv_in + c.inv_in * nor / 2.0) * v2 * (addr - (addr / 2) * 2);         // odd address
    dec += (c.nand_out + c.inv_in * nor / 4.0) * v2 * nand / 4.0;                    // NAND2 stage
    dec += (c.nor_out + c.inv_in) * v2;                                              // one NOR output
    dec += (c.nand_out + c.drv_in) * v2 + (c.drv_out + c.drv_in) * v2 + c.drv_out * v2;  // mux enable
    p.mux = (mux_e + dec * mux * kEpsilon) / pulses;
    // MultilevelSAEncoder.cpp CalculatePower(numColMuxed): levels + log2(levels) INV and NAND2 and
    // log2(levels) wide NANDs in each of the 16 encoders, times epsilon.
    if (adc == AdcKind::Multilevel) {
        const int gates = level_bits;
        p.encoder = ((c.inv_in + c.inv_out) * (kLevels + gates) + (c.inv_in + c.nand_out) * (kLevels + gates) +
                     (c.inv_in + c.nand_lg_out) * gates) * v2 * units * mux * kEpsilon;
    }
    // SubArray.cpp: shiftAddWeight (numCellPerSynapse > 1) and shiftAddInput (numReadPulse > 1);
    // ceil(numColMuxed / numCellPerSynapse) is an integer division in NeuroSim.
    if (digits > 1) p.shift_add += shift_add(c, units, level_bits, digits, mux);
    if (pulses > 1) p.shift_add += shift_add(c, units, level_bits + digits, pulses, double(mux / digits));
    return p;
}

Sense sense(Roadmap r, AdcKind adc, double v_read) {
    // MultilevelSenseAmp.cpp GetColumnPower (current mode) and SarADC.cpp GetColumnPower at 22 nm;
    // temperature factor 1 at Param.cpp's 300 K; P = 1 uW for a column with no driven row.
    Sense s;
    s.adc = adc;
    s.v_read = v_read;
    s.hp = r == Roadmap::HP;
    s.exponent = (s.hp ? 2.311 : 2.303) / std::log(10.0);
    s.dynamic = s.hp ? (adc == AdcKind::Sar ? 0.084273 : 0.073) : (adc == AdcKind::Sar ? 0.072341 : 0.0631);
    return s;
}

double Sense::static_power(int levels) const {
    if (adc == AdcKind::Sar) {
        const double lb = std::log2(double(levels));
        return (hp ? 0.7213 * lb + 3.3041 : 0.538 * lb + 4.3753) * 1e-6;
    }
    return (hp ? 1.8939 : 1.7) * (levels - 1) * 1e-6;
}

double Sense::dynamic_power(double g) const { return g > 0 ? dynamic * std::pow(2.0 * v_read * g, exponent) : 0.0; }

double dff_energy(Roadmap r, double num_read, double num_dff, bool validated) {
    return dff(r == Roadmap::HP ? kHP : kLP, num_read, num_dff, validated);
}

double adder_energy(Roadmap r, int num_bit, double num_adder, double num_read) {
    return adder(r == Roadmap::HP ? kHP : kLP, num_bit, num_adder, num_read);
}

double mux_gate_energy(Roadmap r, double v_read) {
    const Caps& c = r == Roadmap::HP ? kHP : kLP;
    return c.mux_tg_gate_n * c.vdd * c.vdd + c.mux_tg_drain * 2 * v_read * v_read;
}

double Sense::time(int levels) const {
    // LatencyCol is 1 ns at 22 nm (GetColumnLatency, clamped to [1, 10] ns); a SAR conversion takes
    // log2 L + 1 cycles of 1 ns (SarADC.cpp).
    return adc == AdcKind::Sar ? (std::log2(double(levels)) + 1) * 1e-9 : 1e-9;
}

}  // namespace hamq::neurosim13

namespace hamq {

double neurosim13_dff_energy(Roadmap r, double num_read, double num_dff, bool validated) {
    return neurosim13::dff_energy(r, num_read, num_dff, validated);
}

double neurosim13_adder_energy(Roadmap r, int num_bit, double num_adder, double num_read) {
    return neurosim13::adder_energy(r, num_bit, num_adder, num_read);
}

}  // namespace hamq
