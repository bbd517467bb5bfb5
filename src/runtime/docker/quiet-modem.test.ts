// DEBUG=modem must not put registry credentials in the logs: docker-modem dumps each request's
// headers there, X-Registry-Auth included. A fake Docker socket answers the pull, so the test
// sees exactly what the real transport would write.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import createDebug from 'debug';
import Docker from 'dockerode';
import { RegistryCredential } from '../../image/credential.ts';
import { silenceModemDebug } from './quiet-modem.ts';
import { DockerRuntime } from './runtime.ts';

const PASSWORD = 'hunter2-not-for-logs';
const IMAGE = 'registry.test:5000/app:1.0';

/** What the `debug` package writes to stderr while `fn` runs. */
async function stderrOf(fn: () => Promise<unknown>): Promise<string> {
  const chunks: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = (chunk: string | Uint8Array) => {
    chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString());
    return true;
  };
  try {
    await fn();
  } finally {
    process.stderr.write = write;
  }
  return chunks.join('');
}

describe('silenceModemDebug', () => {
  const before = createDebug.disable();
  afterEach(() => {
    createDebug.enable(before);
  });

  it('turns off the modem namespace and leaves the others as they were', () => {
    createDebug.enable('modem,grpc:*');
    expect(silenceModemDebug()).toBe(true);
    expect(createDebug.enabled('modem')).toBe(false);
    expect(createDebug.enabled('grpc:channel')).toBe(true);

    createDebug.enable('*');
    expect(silenceModemDebug()).toBe(true);
    expect(createDebug.enabled('modem')).toBe(false);
    expect(createDebug.enabled('anything')).toBe(true);
  });

  it('does nothing when the namespace is off', () => {
    createDebug.enable('grpc:*');
    expect(silenceModemDebug()).toBe(false);
    expect(createDebug.enabled('grpc:x')).toBe(true);
    createDebug.enable('');
    expect(silenceModemDebug()).toBe(false);
  });
});

describe('a Docker pull with credentials under DEBUG=*', () => {
  const before = createDebug.disable();
  let dir: string;
  let server: Server;
  let socketPath: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'prepull-quiet-modem-'));
    socketPath = join(dir, 'docker.sock');
    server = createServer((req, res) => {
      req.resume();
      if (req.method === 'POST' && req.url?.startsWith('/images/create')) {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end('{"status":"Status: Downloaded newer image"}\n');
        return;
      }
      if (req.method === 'GET' && req.url?.startsWith('/images/')) {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(
          JSON.stringify({
            Id: `sha256:${'a'.repeat(64)}`,
            RepoTags: [IMAGE],
            RepoDigests: [`registry.test:5000/app@sha256:${'b'.repeat(64)}`],
            Size: 1,
          }),
        );
        return;
      }
      res.writeHead(404).end('{"message":"no such thing"}');
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  });

  afterAll(async () => {
    createDebug.enable(before);
    await new Promise<void>((resolve) =>
      server.close(() => {
        resolve();
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  });

  const auth = { username: 'puller', password: PASSWORD };
  const header = Buffer.from(JSON.stringify(auth)).toString('base64');

  it('leaks through dockerode alone: the dump carries X-Registry-Auth (the hazard)', async () => {
    createDebug.enable('*');
    const docker = new Docker({ socketPath });
    const out = await stderrOf(async () => {
      const stream = await docker.createImage(auth, {
        fromImage: 'registry.test:5000/app',
        tag: '1.0',
      });
      stream.resume();
      await new Promise((resolve) => stream.once('end', resolve));
    });
    expect(out).toContain('X-Registry-Auth');
    expect(out.replace(/[-_]/g, (c) => (c === '-' ? '+' : '/'))).toContain(header.slice(0, 40));
  });

  it("stays out of the logs through prepull's Docker runtime", async () => {
    createDebug.enable('*');
    const runtime = new DockerRuntime({ endpoint: `unix://${socketPath}` });
    const credentials = new RegistryCredential({
      source: 'test',
      key: 'registry.test:5000',
      username: 'puller',
      password: PASSWORD,
    });
    let image: unknown;
    const out = await stderrOf(async () => {
      image = await runtime.pull(IMAGE, { credentials, timeoutMs: 10_000 });
    });
    await runtime.close();
    expect(image).toMatchObject({ id: `sha256:${'a'.repeat(64)}` });
    expect(out).not.toContain('X-Registry-Auth');
    expect(out).not.toContain(header.slice(0, 40));
    expect(out).not.toContain(PASSWORD);
    // Other namespaces still log what DEBUG asked for.
    expect(createDebug.enabled('anything')).toBe(true);
  });
});
