export {
  convergenceProblems,
  labelProblems,
  type ObservedDevice,
  observeNode,
  type SuiteSnapshot,
  specProblems,
} from './observe.js';
export {
  ATTACH_SIMULATOR,
  deployLabel,
  OPERANDS,
  type Operand,
  operandArgs,
  repositoryBinaries,
} from './operands.js';
export {
  type ApiServerPeer,
  FakeApiServer,
  FakeKubelet,
  type KubeletPeer,
  type KubeletResource,
  type KubeletView,
  kubeletRefused,
  type PeerContext,
  type PodAllocation,
} from './peers.js';
export { formatScenario, runScenario, SCENARIO, type ScenarioResult, type ScenarioStep } from './scenario.js';
export { type Peers, SUITE_DIR, Suite, type SuiteOptions } from './suite.js';
export { formatTimeline, Timeline, type TimelineEntry } from './timeline.js';
