export { applySpecPlan, SPEC_FILE_MODE, type SpecOutcome, type SpecResult, writeSpecFile } from './apply.js';
export {
  applyWrite,
  DEFAULT_CDI_DIR,
  exitCodeOf,
  type Generated,
  type GenerateOptions,
  generate,
  hostDir,
  type PlannedWrite,
  planWrite,
  type RenderedSpec,
  resultErrors,
  type WriteOptions,
  type WriteReport,
  type WriteResult,
  write,
} from './commands.js';
export { type DeviceSelection, type PublishedDevice, type SkippedDevice, selectDevices } from './devices.js';
export {
  type CdiDirEntry,
  type DeviceObservation,
  DeviceObserver,
  type ObserveOptions,
  observeCdiDir,
  observeDevices,
  presentNodesOf,
} from './observe.js';
export { OwnWrites } from './own-writes.js';
export { type DesiredSpec, planIsClean, planSpecs, type SpecAction, type SpecConflict, type SpecPlan } from './plan.js';
export { reconcileOnce } from './reconcile.js';
export { cdiRuleProblems, KNOWN_CDI_VERSIONS, minimumCdiVersion, parseCdiVersion, type SpecProblem } from './rules.js';
export { CDI_SCHEMA, CDI_SCHEMA_DEFS } from './schema/cdi-schema.js';
export {
  buildSpecs,
  CDI_VERSION,
  type CdiSpec,
  isOwnSpecText,
  OWNER_HEADER,
  renderSpec,
  type SpecForKind,
  specFileName,
} from './spec.js';
export { checkSpecText, parseSpecText, type SpecFormat, schemaProblems, specProblems } from './validate.js';
export { changeOf, watchedDirs, watchForChanges } from './watch.js';
