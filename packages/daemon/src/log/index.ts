export { createLogger, type Logger, type LoggerOptions, resolveLogFormat, serializeError } from './logger.js';
export { formatPrettyLine, type LineSink, prettyStream } from './pretty.js';
