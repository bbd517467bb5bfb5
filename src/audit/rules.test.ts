import { describe, expect, it } from '@jest/globals';
import { audit } from './audit.ts';
import type { Finding } from './rules.ts';

const A = `sha256:${'a'.repeat(64)}`;
const B = `sha256:${'b'.repeat(64)}`;

function prePull(images: string[], nodeSelector?: Record<string, string>, name = 'p'): string {
  return JSON.stringify({
    apiVersion: 'prepull.dev/v1alpha1',
    kind: 'PrePull',
    metadata: { name, namespace: 'ns' },
    spec: { images: images.map((image) => ({ image })), ...(nodeSelector ? { nodeSelector } : {}) },
  });
}

function pod(containers: object[], spec: object = {}): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'x', namespace: 'ns' },
    spec: { ...spec, containers },
  });
}

function findings(workload: string, prePulls: string[], airGapped = false): Finding[] {
  return audit(
    {
      manifests: [{ file: 'w.yaml', text: workload }],
      prePulls: prePulls.map((text, i) => ({ file: `p${i}.yaml`, text })),
    },
    { airGapped, podTemplatePaths: {} },
  ).findings;
}

const never = (image: string): object => ({ name: 'c', image, imagePullPolicy: 'Never' });
const rules = (list: Finding[]): string[] => list.map((f) => f.rule);

describe('not-covered', () => {
  it('compares canonical references: nginx is docker.io/library/nginx:latest', () => {
    const list = findings(pod([never('nginx')]), [prePull(['docker.io/library/nginx:latest'])]);
    expect(rules(list)).toEqual(['mutable-never']);
  });

  it('reports an image with policy Never that no PrePull lists', () => {
    const [finding] = findings(pod([never('app:1')]), [prePull(['app:2'])]);
    expect(finding?.rule).toBe('not-covered');
    expect(finding?.level).toBe('error');
    expect(finding?.message).toContain('PrePulls list other versions: app:2');
  });

  it('matches a workload digest by digest, whatever tag the PrePull also gives', () => {
    expect(findings(pod([never(`app@${A}`)]), [prePull([`app:1@${A}`])])).toEqual([]);
    expect(findings(pod([never(`app@${A}`)]), [prePull([`app@${A}`])])).toEqual([]);
    expect(rules(findings(pod([never(`app@${A}`)]), [prePull([`app@${B}`])]))).toEqual([
      'not-covered',
    ]);
  });

  it('cannot prove a PrePull tag matches a workload digest, and says so', () => {
    const [finding] = findings(pod([never(`app@${A}`)]), [prePull(['app:1'])]);
    expect(finding?.rule).toBe('not-covered');
    expect(finding?.message).toContain('cannot be proven without the registry');
  });

  it('does not take a PrePull pinned by digest for the tag: pulling by digest creates no tag', () => {
    const [finding] = findings(pod([never('app:1')]), [prePull([`app:1@${A}`])]);
    expect(finding?.rule).toBe('not-covered');
    expect(finding?.message).toContain('creates no tag');
  });

  it('ignores images the node may pull, unless air-gapped', () => {
    const pulled = pod([{ name: 'c', image: 'app:1', imagePullPolicy: 'IfNotPresent' }]);
    expect(findings(pulled, [])).toEqual([]);
    expect(rules(findings(pulled, [], true))).toEqual(['not-covered']);
  });

  it('keeps registries with ports and localhost apart from Docker Hub', () => {
    const images = ['registry.local:5000/team/app:1', 'localhost/tools/x:2'];
    expect(findings(pod(images.map(never)), [prePull(images)])).toEqual([]);
    expect(rules(findings(pod(images.map(never)), [prePull(['team/app:1', 'tools/x:2'])]))).toEqual(
      ['not-covered', 'not-covered'],
    );
  });
});

describe('selector-gap', () => {
  const listed = [prePull(['app:1'], { pool: 'gpu', zone: 'a' })];
  const terms = (...expressions: object[][]): object => ({
    affinity: {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: expressions.map((matchExpressions) => ({ matchExpressions })),
        },
      },
    },
  });
  const inOne = (key: string, value: string): object => ({ key, operator: 'In', values: [value] });

  it('is no gap when nodeSelector implies every PrePull label', () => {
    const spec = { nodeSelector: { pool: 'gpu', zone: 'a', extra: 'y' } };
    expect(findings(pod([never('app:1')], spec), listed)).toEqual([]);
  });

  it('names the labels the Pod does not imply', () => {
    const [finding] = findings(pod([never('app:1')], { nodeSelector: { pool: 'gpu' } }), listed);
    expect(finding?.rule).toBe('selector-gap');
    expect(finding?.message).toContain('do not imply zone=a');
    expect(finding?.message).not.toContain('could not be decided');
  });

  it('takes single-value In expressions present in every term as implied', () => {
    const spec = terms([inOne('pool', 'gpu'), inOne('zone', 'a')], [inOne('pool', 'gpu')]);
    const list = findings(pod([never('app:1')], { ...spec, nodeSelector: { zone: 'a' } }), listed);
    expect(list).toEqual([]);
  });

  it('reports other operators as not decidable', () => {
    const spec = terms([{ key: 'pool', operator: 'In', values: ['gpu', 'cpu'] }]);
    const [finding] = findings(
      pod([never('app:1')], { ...spec, nodeSelector: { zone: 'a' } }),
      listed,
    );
    expect(finding?.rule).toBe('selector-gap');
    expect(finding?.message).toContain('could not be decided');
  });

  it('is covered when any one covering PrePull selects the Pod, and everywhere without a selector', () => {
    expect(
      findings(pod([never('app:1')]), [...listed, prePull(['app:1'], undefined, 'q')]),
    ).toEqual([]);
  });
});

describe('other rules', () => {
  it('reports an image that does not parse, and a container without image, as invalid-image', () => {
    const list = findings(pod([never('UPPER/Case'), { name: 'd', imagePullPolicy: 'Never' }]), []);
    expect(rules(list)).toEqual(['invalid-image', 'invalid-image']);
    expect(list[0]?.message).toContain('must be lowercase');
    expect(list[1]?.message).toBe('the container names no image');
  });

  it('warns of a mutable tag only with Never, and of a defaulted policy with the default', () => {
    expect(rules(findings(pod([never(`app:latest@${A}`)]), [prePull([`app@${A}`])]))).toEqual([]);
    const [implicit] = findings(pod([{ name: 'c', image: 'app' }]), []);
    expect(implicit?.rule).toBe('implicit-policy');
    expect(implicit?.message).toContain('defaults it to Always');
  });
});

describe('never-pull-failed wording', () => {
  it('does not tell a cluster audit to run with --resolve, which it does not offer', async () => {
    const { explainNeverPull, listedImages } = await import('./rules.ts');
    const { validatePrePull } = await import('../api/prepull.ts');
    const { prePull: listed } = validatePrePull(JSON.parse(prePull(['r.test/app:1'])) as object);
    const site = {
      file: '/api/v1/namespaces/ns/pods/x',
      document: 0,
      line: 0,
      object: 'Pod ns/x',
      placement: { nodeSelector: {} },
      container: 'c',
      containerType: 'container' as const,
      image: `r.test/app@${A}`,
      imagePullPolicy: 'Never',
    };
    const finding = explainNeverPull(
      site,
      'n1',
      listedImages([{ file: 'p', document: 0, line: 1, prePull: listed! }]),
      new Map(),
    );
    expect(finding.message).toContain('`prepull audit -f` with --resolve can check it');
    expect(finding.message).not.toContain('run with --resolve');
  });
});
