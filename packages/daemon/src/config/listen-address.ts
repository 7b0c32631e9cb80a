/** Where the health and metrics server listens. `host` undefined = every interface (`:9470`). */
export interface ListenAddress {
  host: string | undefined;
  port: number;
}

// host:port, [v6]:port or :port. Hostnames and IPv4 share one character set; IPv6 needs brackets
// so that its colons cannot be mistaken for the port separator.
const ADDRESS = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]*)):(\d{1,5})$/;

/** Parses `host:port`; undefined when the text is not one (callers turn that into their own error). */
export function parseListenAddress(text: string): ListenAddress | undefined {
  const match = ADDRESS.exec(text);
  if (!match) return undefined;
  const port = Number(match[3]);
  if (port > 65_535) return undefined;
  const host = match[1] ?? match[2];
  return { host: host === '' ? undefined : host, port };
}

export function formatListenAddress(address: ListenAddress): string {
  if (address.host === undefined) return `:${address.port}`;
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
