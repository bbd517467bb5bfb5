// The ImageRuntime conformance suite against real Docker Engine (Debian's 20.10) through
// dockerode: the same cases as containerd and the fake, with pinning reported unsupported.
import { afterAll } from '@jest/globals';
import { describeImageRuntimeConformance } from '../../src/runtime/testing/conformance.ts';
import { harnessSetup } from '../conformance/harness-targets.ts';
import { clearLayerCache } from '../harness/images.ts';
import { describeIntegration } from '../harness/jest.ts';

describeIntegration('Docker runtime adapter', () => {
  afterAll(() => {
    clearLayerCache(); // the large test images hold hundreds of MB
  });
  describeImageRuntimeConformance('Docker Engine', harnessSetup('docker'));
});
