export { capV8Tiers, DAEMON_V8_FLAGS } from './v8-tiers.js';
