export * from './errors/index.js';
export * from './fs/index.js';
export * from './types/index.js';
