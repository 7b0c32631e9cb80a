// Imported first by the operands' bin scripts, which run only from the repository (`pnpm exec
// vfio-manager …`): attaches the simulator, so that an operand can open a simulated node. It is a
// loader, so the simulator's bundle loads only when one is opened. The slot is hal's
// (packages/hal/src/fs/simulator.ts); a deployed binary (dist/binaries) has no launcher and no simulator.
globalThis[Symbol.for('gpucc.simulator')] = () =>
  import('../dist/bundle/attachment.mjs').then((bundle) => bundle.simulatorAttachment);
