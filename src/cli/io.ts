// Where a command writes: its standard output and standard error, as functions so tests can
// capture them. Commands take an Output from main.ts; main.ts passes the process's streams.
export interface Output {
  out: (text: string) => void;
  err: (text: string) => void;
  /** Set when standard error is a terminal: its width now (`sync` draws live progress there). */
  errTerminal?: { columns: () => number | undefined } | undefined;
}

export const stdio: Output = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  errTerminal: process.stderr.isTTY ? { columns: () => process.stderr.columns } : undefined,
};
