# gdb commands that read DNN+NeuroSim V1.4's own per-subarray read energies while it runs (no source
# change): one SUBARRAY line per SubArray::CalculatePower call in ProcessingUnitCalculatePerformance
# (energy pass, not the clock-frequency pass), tagged with the layer, and once the capacitances,
# resistances and sizes the SRAM subarray's circuits used (TECH .. SAI lines; "temp" prints the int
# Param::temp as a double: it is 300). Used by run_neurosim.sh; needs a binary built from the same
# sources with debug information.
set pagination off
set print pretty off
set confirm off
set $layer = -1
set $done = 0
break ChipCalculatePerformance
commands
  silent
  set $layer = layerNumber
  continue
end
define subarray_line
  if !CalculateclkFreq
    printf "SUBARRAY %d %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %d %.17g\n", $layer, subArray->activityRowRead, subArray->readDynamicEnergy, subArray->readDynamicEnergyADC, subArray->readDynamicEnergyAccum, subArray->readDynamicEnergyOther, subArray->readDynamicEnergyArray, subArray->multilevelSenseAmp.readDynamicEnergy, subArray->sarADC.readDynamicEnergy, subArray->multilevelSAEncoder.readDynamicEnergy, subArray->wlSwitchMatrix.readDynamicEnergy, subArray->mux.readDynamicEnergy, subArray->muxDecoder.readDynamicEnergy, subArray->shiftAddWeight.readDynamicEnergy, subArray->shiftAddInput.readDynamicEnergy, subArray->adder.readDynamicEnergy, subArray->dff.readDynamicEnergy, columnResistance._M_impl._M_finish - columnResistance._M_impl._M_start, columnResistance._M_impl._M_start[0]
  end
end
define constants
  if !CalculateclkFreq && !$done
    set $done = 1
    set $s = subArray
    set $sa = &subArray->multilevelSenseAmp
    printf "TECH vdd %.17g featureSize %.17g readVoltage %.17g cellReadVoltage %.17g temp %d\n", tech.vdd, tech.featureSize, param->readVoltage, cell.readVoltage, param->temp
    printf "ARRAY numRow %d numCol %d numColMuxed %d capRow1 %.17g capRow2 %.17g capCol %.17g drivecapin %.17g drivecapout %.17g buffernumber %.17g resCellAccess %.17g paramResCellAccess %.17g wireResistanceCol %.17g wireResistanceRow %.17g columncap %.17g refperi %.17g numReadPulse %d numCellPerSynapse %d numAdd %d\n", $s->numRow, $s->numCol, $s->numColMuxed, $s->capRow1, $s->capRow2, $s->capCol, $s->drivecapin, $s->drivecapout, param->buffernumber, $s->resCellAccess, param->resCellAccess, param->wireResistanceCol, param->wireResistanceRow, param->columncap, param->reference_energy_peri, $s->numReadPulse, $s->numCellPerSynapse, $s->numAdd
    printf "SENSE levelOutput %d dumcolshared %.17g gcN %.17g gcP %.17g jcN %.17g jcP %.17g nref %d\n", $sa->levelOutput, param->dumcolshared, $sa->gatecap_senseamp_N, $sa->gatecap_senseamp_P, $sa->junctioncap_senseamp_N, $sa->junctioncap_senseamp_P, $sa->Rref._M_impl._M_finish - $sa->Rref._M_impl._M_start
    set $i = 0
    while $i < ($sa->Rref._M_impl._M_finish - $sa->Rref._M_impl._M_start)
      printf "RREF %d %.17g\n", $i, $sa->Rref._M_impl._M_start[$i]
      set $i = $i + 1
    end
    printf "SWITCH capTgDrain %.17g capTgGateN %.17g capTgGateP %.17g numOutput %d\n", $s->wlSwitchMatrix.capTgDrain, $s->wlSwitchMatrix.capTgGateN, $s->wlSwitchMatrix.capTgGateP, $s->wlSwitchMatrix.numOutput
    printf "SWDFF capTgDrain %.17g capTgGateN %.17g capTgGateP %.17g capInvInput %.17g capInvOutput %.17g numDff %d\n", $s->wlSwitchMatrix.dff.capTgDrain, $s->wlSwitchMatrix.dff.capTgGateN, $s->wlSwitchMatrix.dff.capTgGateP, $s->wlSwitchMatrix.dff.capInvInput, $s->wlSwitchMatrix.dff.capInvOutput, $s->wlSwitchMatrix.dff.numDff
    printf "MUX capTgGateN %.17g capTgDrain %.17g numInput %d\n", $s->mux.capTgGateN, $s->mux.capTgDrain, $s->mux.numInput
    printf "DECODER capInvInput %.17g capNandInput %.17g capNandOutput %.17g capNorInput %.17g capNorOutput %.17g capDriverInvInput %.17g capDriverInvOutput %.17g numAddrRow %d numNand %d numNor %d\n", $s->muxDecoder.capInvInput, $s->muxDecoder.capNandInput, $s->muxDecoder.capNandOutput, $s->muxDecoder.capNorInput, $s->muxDecoder.capNorOutput, $s->muxDecoder.capDriverInvInput, $s->muxDecoder.capDriverInvOutput, $s->muxDecoder.numAddrRow, $s->muxDecoder.numNand, $s->muxDecoder.numNor
    printf "SAW numAdder %d numDff %d numAdderBit %d adderNumBit %d capNandInput %.17g capNandOutput %.17g\n", $s->shiftAddWeight.numAdder, $s->shiftAddWeight.numDff, $s->shiftAddWeight.numAdderBit, $s->shiftAddWeight.adder.numBit, $s->shiftAddWeight.adder.capNandInput, $s->shiftAddWeight.adder.capNandOutput
    printf "SAWDFF capTgDrain %.17g capTgGateN %.17g capTgGateP %.17g capInvInput %.17g capInvOutput %.17g numDff %d\n", $s->shiftAddWeight.dff.capTgDrain, $s->shiftAddWeight.dff.capTgGateN, $s->shiftAddWeight.dff.capTgGateP, $s->shiftAddWeight.dff.capInvInput, $s->shiftAddWeight.dff.capInvOutput, $s->shiftAddWeight.dff.numDff
    printf "SAI numAdder %d numDff %d numAdderBit %d adderNumBit %d\n", $s->shiftAddInput.numAdder, $s->shiftAddInput.numDff, $s->shiftAddInput.numAdderBit, $s->shiftAddInput.adder.numBit
  end
end
break ProcessingUnit.cpp:378
commands
  silent
  constants
  subarray_line
  continue
end
break ProcessingUnit.cpp:457
commands
  silent
  constants
  subarray_line
  continue
end
break ProcessingUnit.cpp:524
commands
  silent
  constants
  subarray_line
  continue
end
run
quit
