// The root logger of a long-running command (sync, agent, controller), on stderr: the format the
// flags ask for, else text for a person at a terminal and JSON everywhere else — a Pod's log, a
// pipe, a file — so the cluster keeps its JSON. Colours only on a terminal, and not with
// NO_COLOR (no-color.org).
import type { DestinationStream } from 'pino';
import {
  type LogFormat,
  type LogLevel,
  type LogOutput,
  type Logger,
  openLogger,
} from '../telemetry/logger.ts';

export interface LogFlags {
  logLevel: LogLevel;
  logFormat?: LogFormat;
}

/** What the choice depends on: whether stderr is a terminal, and the environment (NO_COLOR). */
export interface LogTerminal {
  stderrIsTerminal: boolean;
  env: Readonly<Record<string, string | undefined>>;
}

/** The format and colours of the command's log lines. */
export function logOutput(flags: LogFlags, terminal: LogTerminal): LogOutput {
  const noColor = (terminal.env.NO_COLOR ?? '') !== '';
  return {
    format: flags.logFormat ?? (terminal.stderrIsTerminal ? 'text' : 'json'),
    color: terminal.stderrIsTerminal && !noColor,
  };
}

export function commandLogger(
  flags: LogFlags,
  // isTTY is undefined, not false, when stderr is not a terminal.
  terminal: LogTerminal = { stderrIsTerminal: process.stderr.isTTY, env: process.env },
  /** Where the lines go instead of stderr (sync's progress view on a terminal). */
  destination?: DestinationStream,
): Promise<Logger> {
  const output = logOutput(flags, terminal);
  return openLogger(
    flags.logLevel,
    destination === undefined ? output : { ...output, destination },
  );
}
