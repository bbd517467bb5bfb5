// Two projects: `unit` (no I/O beyond loopback, no root) and `integration` (real registry,
// containerd and Docker Engine from test/harness, started once per run by globalSetup).
// Sources are ESM TypeScript: Node's own type stripper transforms them and Jest runs them in
// its ESM mode
// (docs/adr/0001-node24-esm-jest.md).
const transform = { '^.+\\.ts$': '<rootDir>/scripts/jest-strip-types.js' };

const common = {
  transform,
  extensionsToTreatAsEsm: ['.ts'],
  testEnvironment: 'node',
  moduleFileExtensions: ['ts', 'js', 'json'],
};

export default {
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: [
        '<rootDir>/src/**/*.test.ts',
        '<rootDir>/test/kube-api-server/*.test.ts',
        '<rootDir>/test/harness/*.test.ts',
        '<rootDir>/test/deploy/*.test.ts',
        '<rootDir>/bench/*.test.ts',
      ],
    },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/integration/**/*.test.ts'],
      globalSetup: '<rootDir>/test/harness/jest-global-setup.ts',
      globalTeardown: '<rootDir>/test/harness/jest-global-teardown.ts',
    },
    {
      ...common,
      displayName: 'lifecycle',
      testMatch: ['<rootDir>/test/lifecycle/**/*.test.ts'],
      globalSetup: '<rootDir>/test/harness/jest-global-setup.ts',
      globalTeardown: '<rootDir>/test/harness/jest-global-teardown.ts',
    },
  ],
};
