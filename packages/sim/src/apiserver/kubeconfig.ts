import { SIM_TOKEN } from './paths.js';

/** A kubeconfig for the fake API server: plain HTTP on loopback, a fixed bearer token, namespace default. */
export function kubeconfigYaml(server: string): string {
  return `apiVersion: v1
kind: Config
clusters:
  - name: gpucc-sim
    cluster:
      server: ${server}
      # plain HTTP on loopback: the client accepts http:// only with this set
      insecure-skip-tls-verify: true
contexts:
  - name: gpucc-sim
    context:
      cluster: gpucc-sim
      user: gpucc-sim
      namespace: default
current-context: gpucc-sim
users:
  - name: gpucc-sim
    user:
      token: ${SIM_TOKEN}
`;
}
