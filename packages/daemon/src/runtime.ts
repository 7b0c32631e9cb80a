// What only the long-running `run` mode needs (reconcile loop, health server, metrics). Binaries
// import it lazily, so one-shot commands do not pay for loading the HTTP server and the metrics.
export * from './http/index.js';
export * from './loop/index.js';
export * from './metrics/index.js';
export * from './process/index.js';
