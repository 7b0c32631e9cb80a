/**
 * The kubelet's check of a resource name in Register (`IsExtendedResourceName`): it must contain `/`,
 * not be a native resource (no `kubernetes.io/` in it), not start with `requests.`, and
 * `requests.<name>` must be a qualified name: a DNS-subdomain prefix, and a name part of at most 63
 * characters matching ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9] (upper case allowed).
 */
const NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const REQUESTS_PREFIX = 'requests.';

export function isExtendedResourceName(name: string): boolean {
  if (!name.includes('/') || name.includes('kubernetes.io/') || name.startsWith(REQUESTS_PREFIX)) return false;
  const qualified = `${REQUESTS_PREFIX}${name}`;
  const parts = qualified.split('/');
  if (parts.length !== 2) return false;
  const [prefix, part] = parts as [string, string];
  return prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix) && part.length <= 63 && NAME_PART.test(part);
}
