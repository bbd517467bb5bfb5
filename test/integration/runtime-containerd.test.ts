// The ImageRuntime conformance suite against real containerd (Debian's 1.6) through CRI, with
// containerd's native pinning, events and progress on the same socket.
import { afterAll } from '@jest/globals';
import { describeImageRuntimeConformance } from '../../src/runtime/testing/conformance.ts';
import { harnessSetup } from '../conformance/harness-targets.ts';
import { clearLayerCache } from '../harness/images.ts';
import { describeIntegration } from '../harness/jest.ts';

describeIntegration('containerd runtime adapter', () => {
  afterAll(() => {
    clearLayerCache(); // the large test images hold hundreds of MB
  });
  describeImageRuntimeConformance('containerd (CRI)', harnessSetup('containerd'));
});
