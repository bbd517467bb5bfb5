import { describe, expect, it } from '@jest/globals';
import { effectivePullPolicy } from './policy.ts';

const D = `sha256:${'c'.repeat(64)}`;

// Kubernetes pkg/apis/core/v1/defaults.go SetDefaults_Container and pkg/util/parsers
// ParseImageName, rule by rule.
describe('effective pull policy, as the API server defaults it', () => {
  it.each([
    // `if obj.ImagePullPolicy == ""`: an explicit value always wins, whatever the tag.
    ['nginx', 'Never', 'Never', true],
    ['nginx:1.27', 'Always', 'Always', true],
    ['nginx:latest', 'IfNotPresent', 'IfNotPresent', true],
    // ParseImageName: "If no tag was specified, use the default latest" (no tag and no digest) …
    ['nginx', undefined, 'Always', false],
    ['registry.local:5000/team/app', undefined, 'Always', false],
    // … and `if tag == "latest" { PullAlways }`.
    ['nginx:latest', undefined, 'Always', false],
    // `else { PullIfNotPresent }`: any other tag.
    ['nginx:1.27', undefined, 'IfNotPresent', false],
    // A port is not a tag: the tag separator is the ':' after the last '/'.
    ['registry.local:5000/team/app:1', undefined, 'IfNotPresent', false],
    // A digest alone leaves the tag empty, so no default "latest": IfNotPresent.
    [`nginx@${D}`, undefined, 'IfNotPresent', false],
    // Tag and digest: the tag is still "latest", so Always.
    [`nginx:latest@${D}`, undefined, 'Always', false],
    [`nginx:1.27@${D}`, undefined, 'IfNotPresent', false],
    // "Ignore error": an image that does not parse gets tag "", so IfNotPresent.
    ['Not A Reference', undefined, 'IfNotPresent', false],
    // An empty imagePullPolicy is "not set".
    ['nginx', '', 'Always', false],
  ])('%s with imagePullPolicy %s → %s', (image, given, policy, explicit) => {
    const result = effectivePullPolicy(image, given);
    expect(result.policy).toBe(policy);
    expect(result.explicit).toBe(explicit);
  });

  it('says why it chose', () => {
    expect(effectivePullPolicy('nginx', undefined).reason).toContain('neither tag nor digest');
    expect(effectivePullPolicy('nginx:latest', undefined).reason).toBe('the tag is "latest"');
    expect(effectivePullPolicy(`nginx@${D}`, undefined).reason).toContain('pinned by digest');
  });
});
