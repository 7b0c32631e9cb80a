import { SIM_DIR } from '../node/paths.js';

/** Where the fake API server keeps its state inside a simulated node (root-relative). */
export const APISERVER_DIR = `${SIM_DIR}/apiserver`;
export const STORE_FILE = `${APISERVER_DIR}/store.json`;
export const EVENTS_FILE = `${APISERVER_DIR}/events.jsonl`;
export const STORE_LOCK = `${APISERVER_DIR}/lock`;
export const SERVER_FILE = `${APISERVER_DIR}/server.json`;
export const KUBECONFIG_FILE = `${SIM_DIR}/kubeconfig`;

export const DEFAULT_NODE_NAME = 'gpucc-sim-node';
/** The bearer token of the written kubeconfig; the server refuses requests without it (401). */
export const SIM_TOKEN = 'gpucc-sim-token';
