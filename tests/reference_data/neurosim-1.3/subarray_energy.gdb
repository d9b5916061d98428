# gdb commands that read DNN+NeuroSim V1.3's own per-subarray read energies while it runs (no source
# change): one line per SubArray::CalculatePower call in ProcessingUnitCalculatePerformance, tagged
# with the layer, and the primitive capacitances / supply voltage of the periphery circuits once.
# Used by run_neurosim.sh; needs a binary built from the same sources with debug information.
set pagination off
set print pretty off
set confirm off
set $layer = -1
set $energy = 0
break ChipCalculatePerformance
commands
  silent
  set $layer = layerNumber
  set $energy = !CalculateclkFreq
  continue
end
define subarray_line
  if $energy
    printf "SUBARRAY %d %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %d\n", $layer, subArray->activityRowRead, subArray->readDynamicEnergy, subArray->readDynamicEnergyADC, subArray->readDynamicEnergyAccum, subArray->readDynamicEnergyOther, subArray->readDynamicEnergyArray, subArray->multilevelSenseAmp.readDynamicEnergy, subArray->sarADC.readDynamicEnergy, subArray->multilevelSAEncoder.readDynamicEnergy, subArray->wlNewSwitchMatrix.readDynamicEnergy, subArray->mux.readDynamicEnergy, subArray->muxDecoder.readDynamicEnergy, subArray->shiftAddWeight.readDynamicEnergy, subArray->shiftAddInput.readDynamicEnergy, columnResistance._M_impl._M_finish - columnResistance._M_impl._M_start
  end
end
break ProcessingUnit.cpp:341
commands
  silent
  subarray_line
  continue
end
break ProcessingUnit.cpp:416
commands
  silent
  subarray_line
  continue
end
break ProcessingUnit.cpp:477
commands
  silent
  subarray_line
  continue
end
break SubArray::CalculatePower
commands
  silent
  if $energy && !$caps_done
    set $caps_done = 1
    printf "TECH vdd %.17g featureSize %.17g\n", tech.vdd, tech.featureSize
    printf "ARRAY lengthRow %.17g lengthCol %.17g capRow2 %.17g numRow %d numCol %d\n", lengthRow, lengthCol, capRow2, numRow, numCol
    printf "SWITCH capTgDrain %.17g capTgGateN %.17g capTgGateP %.17g\n", wlNewSwitchMatrix.capTgDrain, wlNewSwitchMatrix.capTgGateN, wlNewSwitchMatrix.capTgGateP
    printf "DFF capTgDrain %.17g capTgGateN %.17g capTgGateP %.17g capInvInput %.17g capInvOutput %.17g\n", wlNewSwitchMatrix.dff.capTgDrain, wlNewSwitchMatrix.dff.capTgGateN, wlNewSwitchMatrix.dff.capTgGateP, wlNewSwitchMatrix.dff.capInvInput, wlNewSwitchMatrix.dff.capInvOutput
    printf "MUX capTgGateN %.17g capTgDrain %.17g numInput %d\n", mux.capTgGateN, mux.capTgDrain, mux.numInput
    printf "DECODER capInvInput %.17g capNandInput %.17g capNandOutput %.17g capNorInput %.17g capNorOutput %.17g capDriverInvInput %.17g capDriverInvOutput %.17g numAddrRow %d numNand %d numNor %d\n", muxDecoder.capInvInput, muxDecoder.capNandInput, muxDecoder.capNandOutput, muxDecoder.capNorInput, muxDecoder.capNorOutput, muxDecoder.capDriverInvInput, muxDecoder.capDriverInvOutput, muxDecoder.numAddrRow, muxDecoder.numNand, muxDecoder.numNor
    printf "ENCODER capInvInput %.17g capInvOutput %.17g capNandInput %.17g capNandOutput %.17g capNandLgInput %.17g capNandLgOutput %.17g numLevel %d numGate %d numEncoder %d\n", multilevelSAEncoder.capInvInput, multilevelSAEncoder.capInvOutput, multilevelSAEncoder.capNandInput, multilevelSAEncoder.capNandOutput, multilevelSAEncoder.capNandLgInput, multilevelSAEncoder.capNandLgOutput, multilevelSAEncoder.numLevel, multilevelSAEncoder.numGate, multilevelSAEncoder.numEncoder
    printf "ADDER capNandInput %.17g capNandOutput %.17g\n", shiftAddWeight.adder.capNandInput, shiftAddWeight.adder.capNandOutput
    printf "SHIFTADD_DFF capTgDrain %.17g capTgGateN %.17g capTgGateP %.17g capInvInput %.17g capInvOutput %.17g\n", shiftAddWeight.dff.capTgDrain, shiftAddWeight.dff.capTgGateN, shiftAddWeight.dff.capTgGateP, shiftAddWeight.dff.capInvInput, shiftAddWeight.dff.capInvOutput
  end
  continue
end
run
quit
