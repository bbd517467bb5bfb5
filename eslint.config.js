// Lint rules: typescript-eslint's type-checked sets, plus the architecture rules: which packages
// each folder may import (docs/adr/0002-layout-and-boundaries.md), and the floors of src/ with no
// import cycle (docs/adr/0012-floors.md, scripts/lint/architecture.js).
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';
import architecture from './scripts/lint/architecture.js';

const adapterOnly = (name, where) => ({
  name,
  message: `${name} is imported only inside ${where} (docs/adr/0002-layout-and-boundaries.md).`,
});

// Shipped code encodes protobuf with src/runtime/proto; these parse .proto files for tests and
// for scripts/proto-descriptors.ts only (docs/adr/0007-proto-codec.md).
const devOnly = (name) => ({
  name,
  message: `${name} is for tests and scripts only: shipped code uses src/runtime/proto (docs/adr/0007-proto-codec.md).`,
});

const ADAPTER_FOLDERS = [
  'src/runtime/cri/**',
  'src/runtime/containerd/**',
  'src/runtime/docker/**',
  'src/kube/**',
];
const ADAPTER_PACKAGES = [
  adapterOnly('@grpc/grpc-js', 'src/runtime/cri and src/runtime/containerd'),
  adapterOnly('dockerode', 'src/runtime/docker'),
  adapterOnly('@kubernetes/client-node', 'src/kube'),
];
const PROTO_PARSERS = ['@grpc/proto-loader', 'protobufjs'];

export default tseslint.config(
  { ignores: ['dist/', 'coverage/', 'node_modules/'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  ...tseslint.configs.stylisticTypeChecked,
  {
    languageOptions: {
      globals: globals.node,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      complexity: ['error', 15],
      'max-params': ['error', 5],
      'max-depth': ['error', 4],
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowNumber: true, allowBoolean: true },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    // Shipped code only: a test may import whatever it checks.
    files: ['src/**/*.ts'],
    ignores: ['src/**/*.test.ts'],
    plugins: { prepull: architecture },
    rules: { 'prepull/floors': 'error', 'prepull/no-cycle': 'error' },
  },
  {
    files: ['src/**/*.ts'],
    ignores: [...ADAPTER_FOLDERS, 'src/**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { paths: [...ADAPTER_PACKAGES, ...PROTO_PARSERS.map(devOnly)] },
      ],
    },
  },
  {
    files: ADAPTER_FOLDERS,
    ignores: ['src/**/*.test.ts'],
    rules: { 'no-restricted-imports': ['error', { paths: PROTO_PARSERS.map(devOnly) }] },
  },
  {
    // Tests may compare with the parsers where they test the codec or the gRPC adapters.
    files: ['src/**/*.test.ts'],
    ignores: [...ADAPTER_FOLDERS, 'src/runtime/proto/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            ...ADAPTER_PACKAGES,
            ...PROTO_PARSERS.map((name) =>
              adapterOnly(
                name,
                'tests of src/runtime/cri, src/runtime/containerd and src/runtime/proto',
              ),
            ),
          ],
        },
      ],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/cli/**', 'src/config/**'],
    rules: {
      'no-restricted-properties': [
        'error',
        {
          object: 'process',
          property: 'env',
          message: 'Configuration is read once in src/config; pass it in instead.',
        },
      ],
    },
  },
  {
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    files: [
      '**/*.test.ts',
      'src/**/testing/**',
      'test/**/*.ts',
      'bench/**/*.ts',
      'scripts/**/*.ts',
    ],
    rules: {
      complexity: 'off',
      'max-params': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
);
