export { detectHostTee, type HostTee } from './tee.js';
