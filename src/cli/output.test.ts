import { describe, expect, it } from '@jest/globals';
import { type SyncResult, humanBytes, renderJson, renderTable } from './output.ts';

const result: SyncResult = {
  node: 'n1',
  runtime: {
    name: 'containerd',
    version: '1.6.20',
    endpoint: 'unix:///run/containerd/containerd.sock',
  },
  images: [
    {
      image: 'r.io/shop/web:1',
      written: 'r.io/shop/web:1',
      requiredBy: ['shop/web'],
      state: 'Present',
      reason: 'Verified',
      digest: `sha256:${'a'.repeat(64)}`,
      registryDigest: `sha256:${'a'.repeat(64)}`,
      size: 3 * 1024 * 1024,
      pinned: true,
      attempts: 0,
      pullDurationMs: 1530,
    },
    {
      image: 'r.io/shop/db:1',
      written: 'r.io/shop/db:1',
      requiredBy: ['shop/web'],
      state: 'Present',
      reason: 'Verified',
      pinned: true,
      pinSource: 'label',
      attempts: 0,
    },
    {
      image: 'Bad/Ref',
      written: 'Bad/Ref',
      requiredBy: ['shop/web'],
      state: 'Failed',
      reason: 'InvalidReference',
      message: 'repository "Bad/Ref" must be lowercase',
      attempts: 0,
    },
  ],
  fileErrors: [
    { code: 'ERR_PREPULL_INVALID', message: 'x.yaml: document 2: spec.pin: must be true or false' },
  ],
  ok: false,
};

describe('sync output', () => {
  it('renders a table with one row per image, the reasons, and a summary', () => {
    expect(renderTable(result).split('\n')).toEqual([
      'IMAGE            STATE    DIGEST               SIZE     PINNED       TIME  REASON',
      'r.io/shop/web:1  Present  sha256:aaaaaaaaaaaa  3.0 MiB  yes          1.5s  Verified',
      'r.io/shop/db:1   Present  -                    -        yes (label)  -     Verified',
      'Bad/Ref          Failed   -                    -        -            -     InvalidReference: repository "Bad/Ref" must be lowercase',
      'error: x.yaml: document 2: spec.pin: must be true or false (ERR_PREPULL_INVALID)',
      '2/3 images present on n1 (containerd 1.6.20); 1 error(s) in the PrePull files',
      '',
    ]);
  });

  it('shows a YAML error whole: the excerpt below its first line, the caret still in place', () => {
    const yamlError = {
      code: 'ERR_PREPULL_INVALID',
      message:
        'p.yaml: document 1 (line 6): not valid YAML: Nested mappings are not allowed in compact mappings at line 6, column 14:\n\n    - image: a: b\n             ^\n',
    };
    const lines = renderTable({ ...result, images: [], fileErrors: [yamlError] }).split('\n');
    expect(lines.slice(1, 5)).toEqual([
      'error: p.yaml: document 1 (line 6): not valid YAML: Nested mappings are not allowed in compact mappings at line 6, column 14: (ERR_PREPULL_INVALID)',
      '',
      '      - image: a: b',
      '               ^',
    ]);
  });

  it('shortens digest references in the table only', () => {
    const ref = `r.io/shop/db@sha256:${'b'.repeat(64)}`;
    const first = result.images[0]!;
    const withDigest = {
      ...result,
      images: [{ ...first, image: ref, written: ref }],
      fileErrors: [],
    };
    expect(renderTable(withDigest).split('\n')[1]).toMatch(
      /^r\.io\/shop\/db@sha256:bbbbbbbbbbbb… +Present/,
    );
    expect(renderJson(withDigest)).toContain(ref);
  });

  it('ends a failure reason with its error code, which the JSON carries as a field', () => {
    const failed = {
      ...result,
      images: [
        {
          image: 'r.io/shop/private:1',
          written: 'r.io/shop/private:1',
          requiredBy: ['shop/web'],
          state: 'Failed' as const,
          reason: 'PullFailed',
          message: 'the registry refused the pull (gave up after 1 attempt)',
          code: 'ERR_REGISTRY_UNAUTHORIZED',
          attempts: 1,
        },
      ],
      fileErrors: [],
    };
    expect(renderTable(failed).split('\n')[1]).toMatch(
      / {2}PullFailed: the registry refused the pull \(gave up after 1 attempt\) \(ERR_REGISTRY_UNAUTHORIZED\)$/,
    );
    expect(JSON.parse(renderJson(failed))).toMatchObject({
      images: [{ code: 'ERR_REGISTRY_UNAUTHORIZED' }],
    });
  });

  it('renders the same result as one JSON document', () => {
    expect(JSON.parse(renderJson(result))).toEqual(result);
  });

  it('formats sizes', () => {
    expect([
      humanBytes(undefined),
      humanBytes(512),
      humanBytes(1536),
      humanBytes(5 * 1024 ** 3),
    ]).toEqual(['-', '512 B', '1.5 KiB', '5.0 GiB']);
  });
});

describe('the disk line', () => {
  const disk = { floor: '20%', floorBytes: 20 * 2 ** 30, pinnedBytes: 2 ** 30, heldImages: 0 };

  it('is left out while nothing is held and free space is measured', () => {
    const table = renderTable({ ...result, disk: { ...disk, availableBytes: 50 * 2 ** 30 } });
    expect(table).not.toMatch(/^disk:/m);
  });

  it('gives free space, the floor, the pins and the held images while an image is held', () => {
    const table = renderTable({
      ...result,
      disk: { ...disk, availableBytes: 19 * 2 ** 30, pinBudgetBytes: 50 * 2 ** 30, heldImages: 2 },
    });
    expect(table).toMatch(
      /^disk: 19\.0 GiB free, floor 20% \(20\.0 GiB\); 1\.0 GiB pinned of a 50\.0 GiB budget; 2 image\(s\) held for room \(ERR_DISK_BUDGET\), pulled once there is room$/m,
    );
    const json = JSON.parse(
      renderJson({ ...result, disk: { ...disk, heldImages: 2 } }),
    ) as SyncResult;
    expect(json.disk).toEqual({ ...disk, heldImages: 2 });
  });

  it('says when free space is not measured', () => {
    const table = renderTable({
      ...result,
      disk: { ...disk, message: 'cannot measure free space at /x (ENOENT)' },
    });
    expect(table).toMatch(
      /^disk: free space not measured \(cannot measure free space at \/x \(ENOENT\)\); 1\.0 GiB pinned$/m,
    );
  });
});
