/**
 * The plugin's socket for a resource: `nvidia.com/pgpu` → `sandbox-pgpu.sock`, as NVIDIA's plugin
 * names it. Safe as a file name: the class part is validated to [A-Za-z0-9_-] by hal's naming.
 */
export function socketNameFor(resourceName: string): string {
  return `sandbox-${resourceName.slice(resourceName.indexOf('/') + 1)}.sock`;
}
