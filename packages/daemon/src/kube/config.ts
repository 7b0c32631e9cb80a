import path from 'node:path';
import { GpuccError, localFs, messageOf } from '@gpucc/hal';
import { KubeConfig } from '@kubernetes/client-node';

/**
 * The client configuration: the kubeconfig file when one is given (`--kubeconfig`, `KUBECONFIG`),
 * else the pod's service account (in-cluster). Anything else is ERR_GPUCC_KUBE_CONFIG, so the
 * binary stops at start with a clear message instead of failing at its first request.
 */
export function loadKubeConfig(given?: string, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const config = new KubeConfig();
  // KUBECONFIG may list several files, as kubectl allows: the first that exists is used.
  const candidates = (given ?? '').split(path.delimiter).filter(Boolean);
  const kubeconfig = candidates.find((file) => localFs.exists(file)) ?? candidates[0];
  if (kubeconfig) {
    try {
      config.loadFromFile(kubeconfig);
    } catch (error) {
      throw new GpuccError('ERR_GPUCC_KUBE_CONFIG', `cannot load kubeconfig ${kubeconfig}: ${messageOf(error)}`, {
        hint: 'pass a readable kubeconfig with --kubeconfig (KUBECONFIG), or run in a pod with a service account',
        cause: error,
        details: { kubeconfig },
      });
    }
    if (!config.getCurrentCluster()) {
      throw new GpuccError('ERR_GPUCC_KUBE_CONFIG', `kubeconfig ${kubeconfig} has no current context with a cluster`, {
        hint: 'set current-context in the kubeconfig (kubectl config use-context NAME)',
        details: { kubeconfig },
      });
    }
    return config;
  }
  if (!env.KUBERNETES_SERVICE_HOST || !env.KUBERNETES_SERVICE_PORT) {
    throw new GpuccError('ERR_GPUCC_KUBE_CONFIG', 'not running in a Kubernetes pod and no kubeconfig given', {
      hint: 'pass --kubeconfig FILE (KUBECONFIG) outside a cluster; in a pod, KUBERNETES_SERVICE_HOST is set for you',
    });
  }
  config.loadFromCluster();
  return config;
}
