const BOOLEAN_WORDS: Record<string, boolean> = {
  true: true,
  '1': true,
  yes: true,
  on: true,
  false: false,
  '0': false,
  no: false,
  off: false,
};

/** A boolean setting written as a word, any case, spaces around ignored; undefined for anything else. */
export function parseBooleanWord(text: string): boolean | undefined {
  return BOOLEAN_WORDS[text.trim().toLowerCase()];
}

/**
 * The addresses of repeated `--device` flags (or their variable), each of which may itself list
 * several separated by commas or spaces.
 */
export function deviceList(device: string | string[] | undefined): string[] {
  return (Array.isArray(device) ? device : device ? [device] : []).flatMap((d) => d.split(/[\s,]+/)).filter(Boolean);
}
