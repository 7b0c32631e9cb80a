// Types of what TypeScript (tests, benchmarks) imports from scripts/bundle.mjs.
export declare const root: string;
export declare const DAEMON_NODE_OPTIONS: string;
