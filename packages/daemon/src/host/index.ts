export { type Host, openHost } from './open-host.js';
export { type DirWatches, watchDirs } from './watch-dirs.js';
