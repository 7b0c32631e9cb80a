import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { conditions: ['@gpucc/source'] },
  ssr: { resolve: { conditions: ['@gpucc/source'] } },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 20_000,
    pool: 'forks',
    // Tests open simulated nodes the way the repository's launch path does: the simulator attached.
    setupFiles: ['test/attach-simulator.ts'],
    coverage: {
      provider: 'v8',
      include: ['packages/*/src/**/*.ts'],
      reporter: ['text-summary', 'json-summary'],
    },
  },
});
