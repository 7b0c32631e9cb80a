export { ERROR_CODES, type GpuccErrorCode } from './codes.js';
export { errnoOf, errorSummary, GpuccError, type GpuccErrorOptions, isGpuccError } from './gpucc-error.js';
