/** One step of a long operation, per device, for a person watching a terminal. */
export interface ProgressEvent {
  device: string;
  /** What happened to it, one short phrase: `reset`, `bound to vfio-pci`, `failed: …`. */
  what: string;
  /** How long that step took. */
  ms?: number;
  ok: boolean;
}

export type ProgressSink = (event: ProgressEvent) => void;

/**
 * Progress lines on a terminal, one per device as it goes (`[3/8] 0000:13:00.0  reset  1.71 s`):
 * undefined when the stream is not a terminal, so callers print nothing extra when piped.
 */
export function terminalProgress(
  stream: { isTTY?: boolean; write: (text: string) => unknown },
  total: number,
  env: NodeJS.ProcessEnv = process.env,
): ProgressSink | undefined {
  if (stream.isTTY !== true || total === 0) return undefined;
  const color = env.NO_COLOR === undefined && env.TERM !== 'dumb';
  const width = String(total).length;
  let count = 0;
  return (event) => {
    count++;
    const mark = event.ok ? (color ? '\u001b[32m✓\u001b[0m' : '✓') : color ? '\u001b[31m✗\u001b[0m' : '✗';
    const time = event.ms === undefined ? '' : `  ${(event.ms / 1000).toFixed(2)} s`;
    stream.write(`${mark} [${String(count).padStart(width)}/${total}] ${event.device}  ${event.what}${time}\n`);
  };
}
