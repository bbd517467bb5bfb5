// Proves the harness's components are real: images built here and pushed through the
// distribution API are pulled by containerd's CRI and by Docker Engine, and containers started
// from them — as kubelet starts a Never-policy Pod — print what the image holds.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import Docker from 'dockerode';
import { KubeletCri } from '../harness/cri.ts';
import {
  buildImage,
  buildIndex,
  busyboxLayer,
  fileLayer,
  fillerLayer,
  runnableImage,
} from '../harness/images.ts';
import {
  BASIC_AUTH,
  type HarnessInfo,
  pushImage,
  registryClient,
  sharedHarness,
  uniqueName,
} from '../harness/index.ts';
import { describeIntegration } from '../harness/jest.ts';

/** Splits Docker's multiplexed log stream (8-byte frame headers) into the text written. */
function demux(buffer: Buffer): string {
  let out = '';
  for (let at = 0; at + 8 <= buffer.length;) {
    const size = buffer.readUInt32BE(at + 4);
    out += buffer.subarray(at + 8, at + 8 + size).toString('utf8');
    at += 8 + size;
  }
  return out;
}

async function dockerPull(
  docker: Docker,
  ref: string,
  auth?: { username: string; password: string },
): Promise<void> {
  const stream = await docker.pull(ref, auth ? { authconfig: auth } : {});
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(stream, (error: Error | null) => {
      if (error) reject(error);
      else resolve();
    });
  });
}

describeIntegration('real-component harness', () => {
  let h: HarnessInfo;
  let cri: KubeletCri;
  let docker: Docker;

  beforeAll(() => {
    h = sharedHarness();
    cri = new KubeletCri(h.containerd!.socket);
    docker = new Docker({ socketPath: h.docker!.socket });
  });

  afterAll(() => {
    cri.close();
  });

  it('pulls a pushed image through CRI PullImage and runs it in a pod sandbox', async () => {
    const plain = h.registries.plain!;
    const name = uniqueName('smoke-cri');
    const image = runnableImage({ marker: `hello from ${name}` });
    const { digest } = await pushImage(plain, name, 'v1', image);
    expect(digest).toBe(image.digest);
    const ref = `${plain.host}/${name}:v1`;

    expect(await cri.imageStatus(ref)).toBeUndefined();
    const imageRef = await cri.pullImage(ref);
    expect(imageRef).toBe(image.configDigest);
    const status = await cri.imageStatus(ref);
    expect(status?.repo_digests).toContain(`${plain.host}/${name}@${image.digest}`);

    const run = await cri.runPod({
      image: ref,
      name,
      workDir: h.workDir,
      cgroupParent: h.containerd!.cgroupParent,
    });
    expect(run.exitCode).toBe(0);
    expect(run.output.trim()).toBe(`hello from ${name}`);
  });

  it('pulls a pushed image through Docker Engine and runs a container from it', async () => {
    const plain = h.registries.plain!;
    const name = uniqueName('smoke-docker');
    const image = runnableImage({ marker: `hello from ${name}` });
    await pushImage(plain, name, 'v1', image);
    const ref = `${plain.host}/${name}:v1`;

    await dockerPull(docker, ref);
    const inspect = await docker.getImage(ref).inspect();
    expect(inspect.RepoDigests).toContain(`${plain.host}/${name}@${image.digest}`);

    const container = await docker.createContainer({
      Image: ref,
      HostConfig: { NetworkMode: 'none' },
    });
    try {
      await container.start();
      const result = (await container.wait()) as { StatusCode: number };
      expect(result.StatusCode).toBe(0);
      const logs = await container.logs({ stdout: true, stderr: true, follow: false });
      expect(demux(logs).trim()).toBe(`hello from ${name}`);
    } finally {
      await container.remove({ force: true });
    }
  });

  it('the basic-auth registry refuses pulls without credentials and serves them with', async () => {
    const basic = h.registries.basic!;
    const name = uniqueName('smoke-auth');
    await pushImage(basic, name, 'v1', runnableImage({ marker: name }));
    const ref = `${basic.host}/${name}:v1`;

    await expect(cri.pullImage(ref)).rejects.toThrow(/401|unauthorized|authorization/i);
    const imageRef = await cri.pullImage(ref, {
      username: BASIC_AUTH.username,
      password: BASIC_AUTH.password,
    });
    expect(imageRef).toMatch(/^sha256:[0-9a-f]{64}$/);

    await expect(dockerPull(docker, ref)).rejects.toThrow(
      /no basic auth|unauthorized|authentication/i,
    );
    await dockerPull(docker, ref, { username: BASIC_AUTH.username, password: BASIC_AUTH.password });
  });

  it('the TLS registry is trusted by containerd and Docker through the harness CA', async () => {
    const tls = h.registries.tls!;
    expect(tls.url).toMatch(/^https:/);
    const name = uniqueName('smoke-tls');
    await pushImage(tls, name, 'v1', runnableImage({ marker: name }));
    const ref = `${tls.host}/${name}:v1`;
    await cri.pullImage(ref);
    await dockerPull(docker, ref);
    expect((await docker.getImage(ref).inspect()).Id).toMatch(/^sha256:/);
  });

  it('a multi-arch index lands its amd64 image, recorded under the index digest', async () => {
    const plain = h.registries.plain!;
    const name = uniqueName('smoke-index');
    const amd64 = runnableImage({ marker: `${name} amd64` });
    const arm64 = buildImage({
      layers: [fileLayer({ '/marker': `${name} arm64` })],
      platform: { os: 'linux', architecture: 'arm64' },
    });
    const index = buildIndex([amd64, arm64]);
    await pushImage(plain, name, 'multi', index);
    const ref = `${plain.host}/${name}:multi`;

    const imageRef = await cri.pullImage(ref);
    expect(imageRef).toBe(amd64.configDigest);
    expect((await cri.imageStatus(ref))?.repo_digests).toContain(
      `${plain.host}/${name}@${index.digest}`,
    );
    const run = await cri.runPod({
      image: ref,
      name,
      workDir: h.workDir,
      cgroupParent: h.containerd!.cgroupParent,
    });
    expect(run.output.trim()).toBe(`${name} amd64`);
  });

  it('images share layers, take chosen layer sizes, and a tag can move to new content', async () => {
    const plain = h.registries.plain!;
    const name = uniqueName('smoke-layers');
    const client = registryClient(plain);
    try {
      const shared = fillerLayer({ bytes: 3 * 1024 * 1024, seed: `${name}-shared` });
      const first = buildImage({
        layers: [busyboxLayer(), shared, fillerLayer({ bytes: 1024, seed: `${name}-a` })],
      });
      const second = buildImage({
        layers: [busyboxLayer(), shared, fillerLayer({ bytes: 2048, seed: `${name}-b` })],
      });
      expect(first.layers[1]?.digest).toBe(second.layers[1]?.digest);

      await client.push(name, 'v1', first);
      expect((await client.headManifest(name, 'v1')).digest).toBe(first.digest);
      const uploadsBefore = client.requestCount.POST ?? 0;
      await client.push(name, 'v1', second);
      // Busybox and the shared filler are already in the repository: only the new filler layer
      // and the new config are uploaded.
      expect((client.requestCount.POST ?? 0) - uploadsBefore).toBe(2);
      expect((await client.headManifest(name, 'v1')).digest).toBe(second.digest);

      const ref = `${plain.host}/${name}:v1`;
      expect(await cri.pullImage(ref)).toBe(second.configDigest);
      const status = await cri.imageStatus(ref);
      expect(Number(status?.size)).toBeGreaterThan(3 * 1024 * 1024);
    } finally {
      client.close();
    }
  });
});
