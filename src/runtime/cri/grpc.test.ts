// loadMethods against @grpc/proto-loader, which it stands in for: the same methods, paths and
// streaming flags, the same bytes on the wire and the same objects back, for the requests and
// answers prepull's adapters send and read.
import { describe, expect, it } from '@jest/globals';
import * as protoLoader from '@grpc/proto-loader';
import { CONTAINERD_PROTOS } from '../containerd/native.ts';
import { LOADER_OPTIONS, loadMethods, type Method } from './grpc.ts';
import { CRI_PROTO } from './runtime.ts';

const DIGEST = `sha256:${'d'.repeat(64)}`;
const IMAGE = {
  id: DIGEST,
  repo_tags: ['nginx:1.27'],
  repo_digests: [`nginx@${DIGEST}`],
  size: '18446744073709551615',
  uid: { value: '-1' },
  username: 'ü',
  spec: { image: 'nginx:1.27', annotations: { a: 'b' } },
  pinned: true,
};

/**
 * Requests and responses as the adapters and the runtimes' answers have them, by method name
 * (containerd's images and content services both have a List: each ignores the other's fields).
 */
const MESSAGES: Record<string, { request: object[]; response: object[] }> = {
  Version: {
    request: [{ version: 'v1' }],
    response: [{ version: '0.1.0', runtime_name: 'containerd', runtime_version: 'v1.7.27' }],
  },
  Status: {
    request: [{ verbose: true }],
    response: [
      {
        status: { conditions: [{ type: 'RuntimeReady', status: true, reason: '', message: '' }] },
        info: { config: '{"sandboxImage":"registry.k8s.io/pause:3.10"}' },
      },
    ],
  },
  ListImages: { request: [{}], response: [{ images: [IMAGE, {}] }] },
  ListPodSandbox: { request: [{}], response: [{ items: [{ id: 'sandbox-1' }, {}] }, {}] },
  ListContainers: {
    request: [{}],
    response: [
      {
        containers: [
          {
            id: 'c1',
            pod_sandbox_id: 'sandbox-1',
            image: { image: 'docker.io/library/nginx:1.27' },
            image_ref: DIGEST,
            image_id: DIGEST,
          },
          {},
        ],
      },
      {},
    ],
  },
  ImageStatus: {
    request: [{ image: { image: 'nginx:1.27' } }],
    response: [{ image: IMAGE, info: {} }, {}],
  },
  PullImage: {
    request: [
      {
        image: { image: 'docker.io/library/nginx:1.27' },
        auth: { username: 'u', password: 'p', identity_token: '', registry_token: 't' },
      },
    ],
    response: [{ image_ref: DIGEST }],
  },
  RemoveImage: { request: [{ image: { image: DIGEST } }], response: [{}] },
  ImageFsInfo: {
    request: [{}],
    response: [
      {
        image_filesystems: [
          {
            timestamp: '1700000000000000000',
            fs_id: { mountpoint: '/var/lib/containerd' },
            used_bytes: { value: '123456789012' },
            inodes_used: { value: 42 },
          },
          { fs_id: { mountpoint: '/x' } },
        ],
      },
    ],
  },
  List: {
    request: [{ filters: ['name=="x",labels."io.cri-containerd.pinned"==pinned'] }, {}],
    response: [
      {
        images: [
          {
            name: 'nginx:1.27',
            labels: { 'io.cri-containerd.pinned': 'pinned' },
            target: { media_type: 'm', digest: DIGEST, size: 1234, annotations: {} },
            created_at: { seconds: '1700000000', nanos: 5 },
          },
        ],
      },
      { info: [{ digest: DIGEST, size: '99' }] },
    ],
  },
  Update: {
    request: [
      {
        image: { name: 'nginx:1.27', labels: { 'io.cri-containerd.pinned': 'pinned' } },
        update_mask: { paths: ['labels.io.cri-containerd.pinned'] },
      },
    ],
    response: [{ image: { name: 'nginx:1.27' } }],
  },
  Publish: {
    request: [
      {
        topic: '/prepull/subscribed',
        event: { type_url: 'prepull.dev/SubscriptionCheck', value: Buffer.from('token') },
      },
    ],
    response: [{}],
  },
  Subscribe: {
    request: [{ filters: ['topic=="/images/delete"'] }],
    response: [
      {
        timestamp: { seconds: 1, nanos: 2 },
        namespace: 'k8s.io',
        topic: '/images/delete',
        event: { type_url: 'containerd.events.ImageDelete', value: Buffer.from([10, 1, 120]) },
      },
      { topic: '/prepull/subscribed' },
    ],
  },
  ListStatuses: {
    request: [{}],
    response: [
      {
        statuses: [
          { ref: 'layer-sha256:1', offset: '1048576', total: 2 ** 53 + 2 },
          { ref: 'x', started_at: {} },
        ],
      },
    ],
  },
};

const SERVICES: [string, readonly string[]][] = [
  ['runtime.v1.RuntimeService', [CRI_PROTO]],
  ['runtime.v1.ImageService', [CRI_PROTO]],
  ['containerd.services.images.v1.Images', CONTAINERD_PROTOS],
  ['containerd.services.events.v1.Events', CONTAINERD_PROTOS],
  ['containerd.services.content.v1.Content', CONTAINERD_PROTOS],
];

describe('loadMethods', () => {
  it.each(SERVICES)('defines %s as @grpc/proto-loader does', (service, files) => {
    const loaded = protoLoader.loadSync([...files], LOADER_OPTIONS)[service] as Record<
      string,
      Method
    >;
    const ours = loadMethods(files, service);
    expect(Object.keys(ours).sort()).toEqual(Object.keys(loaded).sort());
    for (const [name, theirs] of Object.entries(loaded)) {
      const method = ours[name]!;
      expect([method.path, method.requestStream, method.responseStream]).toEqual([
        theirs.path,
        theirs.requestStream,
        theirs.responseStream,
      ]);
      const messages = MESSAGES[name];
      if (messages === undefined) throw new Error(`no test messages for ${name}`);
      const pairs = [
        ...messages.request.map((m) => [m, method.requestSerialize, theirs.requestSerialize]),
        ...messages.response.map((m) => [m, method.responseSerialize, theirs.responseSerialize]),
      ] as [object, (value: object) => Buffer, (value: object) => Buffer][];
      for (const [message, serialize, theirSerialize] of pairs) {
        expect(serialize(message).toString('hex')).toBe(theirSerialize(message).toString('hex'));
      }
      for (const message of messages.request) {
        const bytes = theirs.requestSerialize(message);
        expect(method.requestDeserialize(bytes)).toEqual(theirs.requestDeserialize(bytes));
      }
      for (const message of messages.response) {
        const bytes = theirs.responseSerialize(message);
        expect(method.responseDeserialize(bytes)).toEqual(theirs.responseDeserialize(bytes));
      }
    }
  });

  it('reads answers as the adapters expect them', () => {
    const fs = loadMethods([CRI_PROTO], 'runtime.v1.ImageService').ImageFsInfo!;
    const decoded = fs.responseDeserialize(
      fs.responseSerialize({ image_filesystems: [{ used_bytes: { value: 7 } }] }),
    );
    expect(decoded).toEqual({
      image_filesystems: [
        { timestamp: '0', fs_id: null, used_bytes: { value: '7' }, inodes_used: null },
      ],
      container_filesystems: [],
    });
    const status = loadMethods([CRI_PROTO], 'runtime.v1.ImageService').ImageStatus!;
    expect(status.responseDeserialize(Buffer.alloc(0))).toEqual({ image: null, info: {} });
  });

  it('names the service or file it cannot find', () => {
    expect(() => loadMethods([CRI_PROTO], 'runtime.v1.NoSuchService')).toThrow(
      `proto files ${CRI_PROTO} define no service runtime.v1.NoSuchService`,
    );
    expect(() => loadMethods(['/somewhere/other.proto'], 'x.Y')).toThrow(
      '/somewhere/other.proto is not described in src/runtime/proto/descriptors.ts',
    );
  });
});
