// DNN+NeuroSim V1.4's read energy of one subarray at its defaults (Param.cpp: memcelltype 1, SRAM;
// operationmode 2, conventionalParallel; 22 nm LSTP; 128 x 128; cellBit 1; levelOutput 32 multilevel
// current-mode sense amp shared by numColMuxed 8 columns; numRowParallel = numRowSubArray), split like
// neurosim13.hpp into the sense amp, charged per conversion, and the rest, charged per array read.
// Upstream: github.com/neurosim/DNN_NeuroSim_V1.4, commit ac828e6, Inference_pytorch/NeuroSIM/.
//
// V1.4 models an SRAM column's current from the driven rows alone: ProcessingUnit.cpp
// GetColumnResistance gives every driven row the conductance 1 / (resCellAccess + wireResistanceCol),
// whatever bit the cell stores ("SRAM: weight value do not affect sense energy"). So under this model
// no energy term depends on the stored weights; the sense amp sees R_col = R_cell / n for n driven rows.
#pragma once
#include <cstdint>

namespace hamq::neurosim14 {

constexpr int kRows = 128, kCols = 128, kColsPerAdc = 8, kLevels = 32;
// Param.cpp readVoltage at technode 22 (the sense amp's Vread table, MultilevelSenseAmp.cpp, is the same)
constexpr double kReadVoltage = 0.55;
// SubArray.cpp Initialize: resCellAccess = CalculateOnResistance(widthAccessCMOS F, NMOS) of the SRAM
// cell's access transistor; Param.cpp wireResistanceCol = Rho / (wireWidth^2 AR) * wireWidth *
// widthInFeatureSizeSRAM (wireWidth 40 nm at 22 nm: AR 1.9, Rho 2.97e-8 Ohm m; 28); both read out of
// its program at the defaults
// (tests/reference_data/neurosim-1.4/golden.json, "constants").
constexpr double kResCellAccess = 86357.322435110036;
constexpr double kWireResistanceCol = 10.942105264885598;
constexpr double kCellResistance = kResCellAccess + kWireResistanceCol;  // one driven SRAM row

// Energy of one subarray read (one input pulse into one array), J: fixed + per_row * driven rows.
struct Periphery {
    double array_per_row = 0;                     // readDynamicEnergyArray
    double switch_fixed = 0, switch_per_row = 0;  // wlSwitchMatrix (its DFFs are the fixed part)
    double mux = 0;                               // mux + muxDecoder
    double shift_add = 0;                         // shiftAddWeight + shiftAddInput
};
Periphery periphery(int digits, int pulses);

// One column's sense-amp energy in a read that drives n rows (MultilevelSenseAmp.cpp CalculatePower,
// currentMode): (L-1) Column_SwitchingE + (GetColumnPower(R_cell / n) + refpower) LatencyCol.
double conversion_energy(int64_t driven_rows);
// LatencyCol: the slower of the ladder's two extreme reference columns (ColumnLatency_Table), s.
double column_latency();
// Mux.cpp Mux::CalculatePower for one of the column mux's pass gates turning on.
double mux_gate_energy();

}  // namespace hamq::neurosim14
