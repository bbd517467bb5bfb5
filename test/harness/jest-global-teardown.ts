// Jest globalTeardown: stops the shared harness and fails the run if anything it started remains.
export default async function teardown(): Promise<void> {
  const harness = globalThis.prepullHarness;
  globalThis.prepullHarness = undefined;
  await harness?.stop();
}
