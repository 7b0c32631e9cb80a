import { execFile } from 'node:child_process';
import type { ControlPlane } from '@gpucc/testbed/real';
import { REPO } from './processes.js';

/** kubectl 1.x (on PATH) against the control plane's API server as the admin. */
export function kubectl(
  cp: ControlPlane,
  args: string[],
  input?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const kubeconfig = cp.kubeconfig('admin');
  return new Promise((resolve) => {
    const child = execFile(
      'kubectl',
      ['--kubeconfig', kubeconfig, ...args],
      { cwd: REPO, maxBuffer: 32 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}
