// What only the long-running `run` mode needs (reconcile loop, health server, metrics). Binaries
// import it lazily, so one-shot commands do not pay for loading prom-client and the HTTP server.
export * from './http/index.js';
export * from './loop/index.js';
export * from './metrics/index.js';
export * from './process/index.js';
