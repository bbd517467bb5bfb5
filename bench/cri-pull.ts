// The least a Node.js command can do to pull an image through CRI, for the benchmarks' floor:
// start Node, load gRPC, connect, send one PullImage, print the image ID the runtime answers,
// exit. No YAML, no logger, no listing, no verification, no pinning, no report. Node's compile
// cache is on, as bin/prepull.js has it for a short-lived command, so the difference between it
// and `prepull sync --once` is prepull's own work, not Node's. (The launcher also compiles the
// bundle whole, --no-lazy, which saves `sync --once` ~35 ms; here it costs ~50 ms, so the floor
// goes without it.)
//
//   node bench/cri-pull.ts unix:///run/containerd/containerd.sock IMAGE
import { enableCompileCache } from 'node:module';

enableCompileCache();

const [endpoint, image] = process.argv.slice(2);
if (endpoint === undefined || image === undefined) {
  process.stderr.write('usage: node bench/cri-pull.ts unix:///path/to/socket IMAGE\n');
  process.exit(2);
}

// A CommonJS package: Node gives its exports as `default` (what a bundle gives may differ).
const loaded = await import('@grpc/grpc-js');
const grpc = ('default' in loaded ? loaded.default : loaded) as typeof loaded;

function varint(n: number): Buffer {
  const bytes: number[] = [];
  while (n > 0x7f) {
    bytes.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

/** Field 1, wire type 2 (length-delimited). */
function field1(payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x0a]), varint(payload.length), payload]);
}

// runtime.v1.PullImageRequest { ImageSpec image = 1 } with ImageSpec { string image = 1 }.
const request = field1(field1(Buffer.from(image, 'utf8')));

/** runtime.v1.PullImageResponse { string image_ref = 1 }: the only field containerd sets. */
function imageRef(response: Buffer): string {
  if (response[0] !== 0x0a) throw new Error('PullImageResponse without image_ref');
  let length = 0;
  let shift = 0;
  let at = 1;
  for (;;) {
    const byte = response[at++]!;
    length |= (byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) break;
    shift += 7;
  }
  return response.subarray(at, at + length).toString('utf8');
}

const client = new grpc.Client(endpoint, grpc.credentials.createInsecure());
client.makeUnaryRequest(
  '/runtime.v1.ImageService/PullImage',
  (message: Buffer) => message,
  (bytes: Buffer) => bytes,
  request,
  { deadline: Date.now() + 600_000 },
  (error, response) => {
    client.close();
    if (error !== null || response === undefined) {
      process.stderr.write(`PullImage ${image}: ${error?.message ?? 'no response'}\n`);
      process.exitCode = 1;
      return;
    }
    process.stdout.write(`${imageRef(response)}\n`);
  },
);
