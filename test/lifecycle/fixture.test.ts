// Not a test of prepull: a fixture that test/harness/leak-check.ts runs to prove the harness
// cleans up after a failing run and after an interrupted one. It does nothing unless
// PREPULL_LIFECYCLE names a scenario (the leak check sets it).
import { describe, expect, it } from '@jest/globals';
import Docker from 'dockerode';
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeletCri } from '../harness/cri.ts';
import { runnableImage } from '../harness/images.ts';
import { pushImage, sharedHarness, uniqueName } from '../harness/index.ts';

const scenario = process.env.PREPULL_LIFECYCLE;
const readyFile = process.env.PREPULL_LIFECYCLE_READY;

/** Leaves a running pod in containerd and a running container in Docker, as a real test might. */
async function startLongRunningContainers(): Promise<void> {
  const h = sharedHarness();
  const plain = h.registries.plain!;
  const name = uniqueName('lifecycle');
  await pushImage(plain, name, 'v1', runnableImage({ marker: name }));
  const ref = `${plain.host}/${name}:v1`;
  const cri = new KubeletCri(h.containerd!.socket);
  await cri.pullImage(ref);
  await cri.startPod({
    image: ref,
    name,
    workDir: h.workDir,
    cgroupParent: h.containerd!.cgroupParent,
    command: ['/bin/sleep', '3600'],
  });
  const docker = new Docker({ socketPath: h.docker!.socket });
  const stream = await docker.pull(ref);
  await new Promise((resolve) => {
    docker.modem.followProgress(stream, resolve);
  });
  const container = await docker.createContainer({
    Image: ref,
    Cmd: ['/bin/sleep', '3600'],
    HostConfig: { NetworkMode: 'none' },
  });
  await container.start();
}

const run = scenario === undefined ? describe.skip : describe;

run(`harness lifecycle fixture (${scenario ?? 'inactive'})`, () => {
  it('leaves running containers behind, then fails or hangs', async () => {
    await startLongRunningContainers();
    if (readyFile !== undefined) writeFileSync(readyFile, 'ready\n');
    if (scenario === 'fail') {
      expect('this run').toBe('failing on purpose');
    }
    if (scenario === 'hang') {
      await sleep(600_000);
    }
  }, 700_000);
});
