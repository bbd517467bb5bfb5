import { describe, expect, it } from '@jest/globals';
import { logOutput } from './log.ts';

const terminal = { stderrIsTerminal: true, env: {} };
const pipe = { stderrIsTerminal: false, env: {} };

describe('the log format of a command', () => {
  it('is text for a person at a terminal and JSON anywhere else (a Pod, a pipe, a file)', () => {
    expect(logOutput({ logLevel: 'info' }, terminal)).toEqual({ format: 'text', color: true });
    expect(logOutput({ logLevel: 'info' }, pipe)).toEqual({ format: 'json', color: false });
  });

  it('is what --log-format says, whatever stderr is', () => {
    expect(logOutput({ logLevel: 'info', logFormat: 'json' }, terminal).format).toBe('json');
    expect(logOutput({ logLevel: 'info', logFormat: 'text' }, pipe)).toEqual({
      format: 'text',
      color: false,
    });
  });

  it('has no colours with NO_COLOR set (and not empty)', () => {
    const noColor = { stderrIsTerminal: true, env: { NO_COLOR: '1' } };
    expect(logOutput({ logLevel: 'info' }, noColor)).toEqual({ format: 'text', color: false });
    const empty = { stderrIsTerminal: true, env: { NO_COLOR: '' } };
    expect(logOutput({ logLevel: 'info' }, empty).color).toBe(true);
  });
});
