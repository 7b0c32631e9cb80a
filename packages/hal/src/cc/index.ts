export {
  CC_NODE_STATE_FILE,
  type CcModeState,
  type CcNodeState,
  type CcSwitching,
  readCcNodeState,
  writeCcNodeState,
} from './node-state.js';
