import { describe, expect, it } from '@jest/globals';
import { type PrePull, validatePrePull } from '../api/prepull.ts';
import { SANDBOX, desiredImages } from './desired.ts';

function prePull(name: string, spec: Record<string, unknown>, namespace = 'shop'): PrePull {
  const { prePull: value, issues } = validatePrePull({
    apiVersion: 'prepull.dev/v1alpha1',
    kind: 'PrePull',
    metadata: { name, namespace },
    spec,
  });
  if (value === undefined) throw new Error(JSON.stringify(issues));
  return value;
}

describe('desiredImages', () => {
  it('takes the images of PrePulls whose nodeSelector matches the node, plus the sandbox image', () => {
    const all = [
      prePull('web', { images: [{ image: 'r.io/shop/web:1' }], nodeSelector: { role: 'worker' } }),
      prePull('gpu', { images: [{ image: 'r.io/ml/cuda:12' }], nodeSelector: { gpu: 'true' } }),
      prePull('base', { images: [{ image: 'busybox' }] }),
    ];
    const desired = desiredImages(all, { role: 'worker' }, 'registry.k8s.io/pause:3.9');
    expect([...desired.keys()]).toEqual([
      'docker.io/library/busybox:latest',
      'r.io/shop/web:1',
      'registry.k8s.io/pause:3.9',
    ]);
    expect(desired.get('docker.io/library/busybox:latest')?.written).toBe('busybox');
    expect(desired.get('registry.k8s.io/pause:3.9')?.requiredBy).toEqual([SANDBOX]);
  });

  it('merges an image wanted by several PrePulls: one entry, the stricter settings, every owner and secret', () => {
    const a = prePull('a', {
      images: [{ image: 'nginx:1.27' }],
      imagePullSecrets: [{ name: 'regcred' }],
      schedule: '0 * * * *',
      timeoutSeconds: 60,
    });
    const b = prePull(
      'b',
      {
        images: [{ image: 'docker.io/library/nginx:1.27' }],
        pullPolicy: 'Always',
        pin: false,
        backoffLimit: 10,
        imagePullSecrets: [{ name: 'regcred' }, { name: 'other' }],
        schedule: '*/5 * * * *',
      },
      'team',
    );
    const entry = desiredImages([b, a], {}).get('docker.io/library/nginx:1.27');
    expect(entry).toMatchObject({
      requiredBy: ['shop/a', 'team/b'],
      pullPolicy: 'Always',
      verify: 'Registry',
      pin: true,
      timeoutSeconds: 1800,
      backoffLimit: 10,
      secrets: [
        { namespace: 'shop', name: 'regcred' },
        { namespace: 'team', name: 'regcred' },
        { namespace: 'team', name: 'other' },
      ],
    });
  });

  it('keeps a bad reference as its own failed entry without dropping the others', () => {
    const desired = desiredImages(
      [prePull('x', { images: [{ image: 'Bad/Name:1' }, { image: 'ok:1' }] })],
      {},
    );
    expect(desired.get('Bad/Name:1')?.invalid?.code).toBe('ERR_IMAGE_REF_INVALID');
    expect(desired.get('docker.io/library/ok:1')?.invalid).toBeUndefined();
  });

  it('marks digest references as self-verifying', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const desired = desiredImages([prePull('d', { images: [{ image: `r.io/a@${digest}` }] })], {});
    expect(desired.get(`r.io/a@${digest}`)?.byDigest).toBe(true);
  });
});
