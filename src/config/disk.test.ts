import { describe, expect, it } from '@jest/globals';
import { parseAgentArgs } from './agent.ts';
import { DEFAULT_DISK_FLOOR, parseByteQuantity, parseDiskFloor, parsePinBudget } from './disk.ts';
import { parseSyncArgs } from './sync.ts';

describe('disk guard flags', () => {
  it.each([
    ['123', 123],
    ['10Gi', 10 * 2 ** 30],
    ['500M', 500e6],
    ['1.5Ti', 1.5 * 2 ** 40],
    ['64Ki', 65_536],
    ['2k', 2000],
    ['1e9', 1e9],
    ['0.5Ki', 512],
    [' 7G ', 7e9],
  ])('reads the quantity %s', (text, bytes) => {
    expect(parseByteQuantity(text)).toBe(bytes);
  });

  it.each(['', 'Gi', '10GB', '10 Gi', '10K', '-5Gi', 'ten', '1e', '10gi', '1Yi', '9999999Ei'])(
    'refuses %j as a quantity',
    (text) => {
      expect(parseByteQuantity(text)).toBeUndefined();
    },
  );

  it('defaults the floor to 20% (kubelet GC low mark, above its 15% eviction line)', () => {
    expect(parseDiskFloor(undefined)).toEqual({ percent: 20 });
    expect(DEFAULT_DISK_FLOOR).toEqual({ percent: 20 });
  });

  it('reads a floor as a percentage or a quantity', () => {
    expect(parseDiskFloor('15%')).toEqual({ percent: 15 });
    expect(parseDiskFloor('0%')).toEqual({ percent: 0 });
    expect(parseDiskFloor('10Gi')).toEqual({ bytes: 10 * 2 ** 30 });
    expect(parseDiskFloor('0')).toEqual({ bytes: 0 });
  });

  it('has no budget unless one is given', () => {
    expect(parsePinBudget(undefined)).toBeUndefined();
    expect(parsePinBudget('50Gi')).toBe(50 * 2 ** 30);
  });

  it.each([
    [['--image-fs-floor', '100%'], /--image-fs-floor: "100%" leaves no room at all/],
    [
      ['--image-fs-floor', '15 percent'],
      /--image-fs-floor must be .*"20%".*"10Gi", got "15 percent"/,
    ],
    [['--image-fs-floor=-1Gi'], /--image-fs-floor must be .* got "-1Gi"/],
    [['--pin-budget', '0'], /--pin-budget must be a positive quantity .* got "0"/],
    [['--pin-budget', '50GB'], /--pin-budget must be a positive quantity .* got "50GB"/],
    [['--pin-budget', '10%'], /--pin-budget must be a positive quantity .* got "10%"/],
    [['--image-fs-path', 'var/lib'], /--image-fs-path must be an absolute path, got "var\/lib"/],
  ])('sync refuses %j, naming the flag and the value', (flags, message) => {
    expect(() => parseSyncArgs(['-f', 'a.yaml', ...flags])).toThrow(message);
    expect(() => parseSyncArgs(['-f', 'a.yaml', ...flags])).toThrow(/prepull sync --help/);
  });

  it('the agent refuses the same values, pointing at its own help', () => {
    expect(() => parseAgentArgs(['--pin-budget', 'lots'], { NODE_NAME: 'n' })).toThrow(
      /--pin-budget must be a positive quantity .* got "lots"; run `prepull agent --help`/,
    );
    expect(() => parseAgentArgs(['--image-fs-floor', '150%'], { NODE_NAME: 'n' })).toThrow(
      /--image-fs-floor: "150%"/,
    );
  });
});
