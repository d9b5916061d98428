// DNN+NeuroSim V1.3's read energy of one subarray (SubArray::CalculatePower, conventionalParallel
// mode, RRAM 1T1R, 22 nm), split into what hamqcore computes per conversion (the sense amp / ADC,
// which sees the data) and the rest, which depends only on how many rows a read drives.
// Upstream: github.com/neurosim/DNN_NeuroSim_V1.3, commit 388f421, Inference_pytorch/NeuroSIM/.
#pragma once
#include "hamqcore/crossbar.hpp"

namespace hamq::neurosim13 {

// NeuroSim's defaults (Param.cpp) that its periphery is sized for.
constexpr int kRows = 128, kCols = 128, kColsPerAdc = 8, kLevels = 32;
constexpr double kResistanceOn = 6e3, kResistanceOff = 6e3 * 150;  // Param.cpp resistanceOn/Off
constexpr double kAccessFraction = 0.25;                            // constant.h IR_DROP_TOLERANCE
constexpr double kReadVoltage = 0.5;                                // Param.cpp readVoltage
constexpr double kAccessVoltage = 1.1;                              // Param.cpp accessVoltage
// Wire resistance per cell pitch (Param.cpp: wireWidth 40 nm at 22 nm: AR 1.9, Rho 4.03e-8 Ohm m;
// 1T1R cell 4 F tall and 12 F wide in wireWidth units): Rho / (w AR) * (4 or 12).
constexpr double kWireRow = 4.03e-8 / (40e-9 * 1.9) * 4;
constexpr double kWireCol = 4.03e-8 / (40e-9 * 1.9) * 12;

// Energy of one subarray read (one input pulse into one array), J: fixed + per_row * driven rows.
struct Periphery {
    double array_fixed = 0, array_per_row = 0;    // readDynamicEnergyArray
    double switch_fixed = 0, switch_per_row = 0;  // wlNewSwitchMatrix (its DFFs are the fixed part)
    double mux = 0;                               // (mux + muxDecoder) / numReadPulse
    double encoder = 0;                           // multilevelSAEncoder (multilevel SA only)
    double shift_add = 0;                         // shiftAddWeight + shiftAddInput
};
Periphery periphery(Roadmap r, AdcKind adc, int digits, int pulses, double v_read);

// Sense amp / ADC of one conversion with L levels: power P = static_power(L) + dynamic (2 V_read G)^exponent
// (NeuroSim's exp(-k log10(R 0.5 / V_read)) with exponent = k / ln 10), or idle_power when no row is
// driven (R = infinity), for time(L) seconds.
struct Sense {
    AdcKind adc = AdcKind::Multilevel;
    bool hp = false;
    double dynamic = 0, exponent = 1, idle_power = 1e-6, v_read = 0.5;
    double static_power(int levels) const;
    double dynamic_power(double g) const;  // the conductance-dependent term alone, W (g in S)
    double time(int levels) const;
};
Sense sense(Roadmap r, AdcKind adc, double v_read);

// NeuroSim's digital gates at 22 nm, for the circuits hamqcore's periphery options add (README "What
// each option assumes"): DFF.cpp DFF::CalculatePower with numDff flip-flops all passing data, clocked
// num_read times, times Param.cpp's validated activity gamma; Adder.cpp Adder::CalculatePower of
// num_adder ripple-carry adders of num_bit bits, num_read times, times the adder activity delta.
double dff_energy(Roadmap r, double num_read, double num_dff, bool validated = true);
double adder_energy(Roadmap r, int num_bit, double num_adder, double num_read);
// Mux.cpp Mux::CalculatePower for one pass gate turning on (the column mux's gates): its gate to VDD
// and its two drains to the read voltage.
double mux_gate_energy(Roadmap r, double v_read);

}  // namespace hamq::neurosim13
