/**
 * `gpucc-sim label DIR | head -3`: the reader goes away while a command still prints. Node then
 * raises EPIPE as an uncaught error with a stack trace; a command line tool should end quietly,
 * as one killed by SIGPIPE would. Installed once per process by the CLIs.
 */
let installed = false;

export function endQuietlyWhenStdoutCloses(): void {
  if (installed) return;
  installed = true;
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(process.exitCode ?? 0);
  });
}
