/** An error shaped like Node's system errors (`code` = errno name), as a real sysfs write would throw. */
export class KernelErrno extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

export function fail(code: string, message: string): never {
  throw new KernelErrno(code, message);
}
