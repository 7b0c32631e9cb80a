export { type Host, openHost, SIMULATED_NODE_MARKER } from './open-host.js';
export { type DirWatches, watchDirs } from './watch-dirs.js';
