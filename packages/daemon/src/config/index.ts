export { addAliasOptions, aliasesOf, aliasSchema } from './aliases.js';
export {
  addCommonOptions,
  type CommonConfig,
  commonSchema,
  DEFAULT_METRICS_ADDRESS,
  defaultMetricsAddress,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type LogLevel,
  METRICS_PORTS,
  readCommonConfig,
} from './common.js';
export { formatListenAddress, type ListenAddress, parseListenAddress } from './listen-address.js';
export { envVarFor, type MirroredOptionSettings, mirroredFlag, mirroredOption } from './options.js';
export { addPciIdsOption, readPciIdsSource } from './pci-ids.js';
export { describeOption, parsedString, readOptions } from './read-options.js';
export { addVfioDeviceModelOption, vfioDeviceModelSchema } from './vfio-device-model.js';
export { deviceList, parseBooleanWord } from './words.js';
