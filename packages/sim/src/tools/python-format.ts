/**
 * How Python prints things that gpu-admin-tools output contains: `repr()` of a list of strings (the
 * `Command line arguments:` line), logging's `asctime.msecs LEVEL message` lines, and tracebacks.
 * Pure: data in, text out.
 */

/** `repr(str)`: single quotes unless the text has a single quote and no double quote. */
export function pythonStrRepr(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let body = '';
  for (const ch of text) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === '\\') body += '\\\\';
    else if (ch === quote) body += `\\${quote}`;
    else if (ch === '\n') body += '\\n';
    else if (ch === '\r') body += '\\r';
    else if (ch === '\t') body += '\\t';
    else if (code < 0x20 || code === 0x7f) body += `\\x${code.toString(16).padStart(2, '0')}`;
    else body += ch;
  }
  return `${quote}${body}${quote}`;
}

export function pythonListRepr(items: readonly string[]): string {
  return `[${items.map(pythonStrRepr).join(', ')}]`;
}

export type LogLevel = 'DEBUG' | 'INFO' | 'WARNING' | 'ERROR' | 'CRITICAL';

const two = (n: number) => String(n).padStart(2, '0');

/** logging's `%(asctime)s.%(msecs)03d` with datefmt `%Y-%m-%d,%H:%M:%S`, in local time as Python uses. */
export function logTimestamp(date: Date): string {
  const day = `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())}`;
  const time = `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
  return `${day},${time}.${String(date.getMilliseconds()).padStart(3, '0')}`;
}

/** One log line: `<date>,<time>.<ms> <LEVEL padded to 8> <message>`. */
export function logLine(date: Date, level: LogLevel, message: string): string {
  return `${logTimestamp(date)} ${level.padEnd(8)} ${message}`;
}

export interface PythonFrame {
  file: string;
  line: number;
  func: string;
  code: string;
}

/** An uncaught exception as CPython prints it on stderr (newline-terminated). */
export function pythonTraceback(frames: readonly PythonFrame[], exception: string): string {
  const lines = ['Traceback (most recent call last):'];
  for (const f of frames) lines.push(`  File "${f.file}", line ${f.line}, in ${f.func}`, `    ${f.code}`);
  lines.push(exception);
  return `${lines.join('\n')}\n`;
}

const ERRNO: Readonly<Record<string, { n: number; text: string; cls?: string }>> = {
  EPERM: { n: 1, text: 'Operation not permitted', cls: 'PermissionError' },
  ENOENT: { n: 2, text: 'No such file or directory', cls: 'FileNotFoundError' },
  EIO: { n: 5, text: 'Input/output error' },
  EAGAIN: { n: 11, text: 'Resource temporarily unavailable', cls: 'BlockingIOError' },
  EACCES: { n: 13, text: 'Permission denied', cls: 'PermissionError' },
  EBUSY: { n: 16, text: 'Device or resource busy' },
  ENODEV: { n: 19, text: 'No such device' },
  EINVAL: { n: 22, text: 'Invalid argument' },
  ENOTTY: { n: 25, text: 'Inappropriate ioctl for device' },
  ETIMEDOUT: { n: 110, text: 'Connection timed out', cls: 'TimeoutError' },
};

/** The last traceback line of a failed write(2) in Python, e.g. `OSError: [Errno 5] Input/output error`. */
export function pythonOsError(errno: string | undefined): string {
  const known = errno === undefined ? undefined : ERRNO[errno];
  if (!known) return `OSError: ${errno ?? 'unknown error'}`;
  return `${known.cls ?? 'OSError'}: [Errno ${known.n}] ${known.text}`;
}
