// Paced rollouts on the node (ADR 0014): an image the node never held waits for its PrePull to
// admit the node; an image it held before — seen Present now, or in its last report before a
// restart — is repaired at once, admitted or not; admission given or withdrawn resets nothing.
import { describe, expect, it } from '@jest/globals';
import { World, pick, prePull } from './testing/world.ts';

const WEB = 'r.io/shop/web:1';
const paced = prePull('shop', { images: [{ image: WEB }], rollout: { maxConcurrentNodes: 1 } });

describe('Engine admission', () => {
  it('does not pull for a PrePull that has not admitted the node, and pulls once it does', async () => {
    const w = new World();
    w.publish(WEB, 1);
    w.engine.setPrePulls([paced], new Set());
    await w.engine.start();
    let reports = await w.settle();
    expect(pick(reports, WEB)).toMatchObject({
      state: 'Missing',
      reason: 'AwaitingAdmission',
      attempts: 0,
    });
    expect(w.calls('pull')).toEqual([]);

    w.engine.setPrePulls([paced], new Set(['shop/shop']));
    reports = await w.settle();
    expect(pick(reports, WEB)).toMatchObject({ state: 'Present', reason: 'Verified' });
    expect(w.calls('pull')).toEqual([WEB]);
  });

  it('pulls when any PrePull wanting the image admits the node (an unpaced one always does)', async () => {
    const w = new World();
    w.publish(WEB, 1);
    const open = prePull('open', { images: [{ image: WEB }] });
    // `open` is unpaced: the caller lists it among the admitting PrePulls.
    w.engine.setPrePulls([paced, open], new Set(['shop/open']));
    await w.engine.start();
    const reports = await w.settle();
    expect(pick(reports, WEB)).toMatchObject({ state: 'Present' });
  });

  it('repairs an image the node held without waiting for admission', async () => {
    const w = new World();
    w.publish(WEB, 1);
    w.holdPulled(WEB, 1);
    w.engine.setPrePulls([paced], new Set());
    await w.engine.start();
    expect(pick(await w.settle(), WEB)).toMatchObject({ state: 'Present' });
    // Removed behind the engine's back: pulled back although the node is not admitted.
    await w.runtime.remove(WEB);
    const reports = await w.settle();
    expect(pick(reports, WEB)).toMatchObject({ state: 'Present' });
    expect(w.calls('pull')).toEqual([WEB]);
  });

  it('repairs at once an image its last report before a restart listed Present', async () => {
    const w = new World();
    w.publish(WEB, 1);
    w.engine.rememberHeld([WEB]);
    w.engine.setPrePulls([paced], new Set());
    await w.engine.start();
    const reports = await w.settle();
    expect(pick(reports, WEB)).toMatchObject({ state: 'Present' });
  });

  it('keeps a failed image failed when only the admission changes (no fresh attempts)', async () => {
    const w = new World();
    // Not published: the registry says not found, which fails at once.
    w.engine.setPrePulls([paced], new Set(['shop/shop']));
    await w.engine.start();
    expect(pick(await w.settle(), WEB)).toMatchObject({ state: 'Failed' });
    const pulls = w.calls('pull').length;
    // The controller drops the failed node from the rollout, then admits it again.
    w.engine.setPrePulls([paced], new Set());
    w.engine.setPrePulls([paced], new Set(['shop/shop']));
    expect(pick(await w.settle(), WEB)).toMatchObject({ state: 'Failed' });
    expect(w.calls('pull')).toHaveLength(pulls);
  });
});
