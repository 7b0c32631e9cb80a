export * from './config/index.js';
export * from './host/index.js';
export * from './http/index.js';
export * from './log/index.js';
export * from './loop/index.js';
export * from './metrics/index.js';
