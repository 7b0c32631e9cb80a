export {
  CC_MODE_RECORD_FILE,
  type CcModeRecord,
  type CcModeState,
  type CcModesRecord,
  type CcNodeState,
  type CcSwitching,
  readCcModeRecord,
  readCcModes,
  readCcNodeState,
  updateCcModeRecord,
  writeCcModes,
  writeCcNodeState,
} from './mode-record.js';
