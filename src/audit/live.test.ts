import { describe, expect, it } from '@jest/globals';
import type { KubeRequester, Method, RequestOptions } from '../kube/client.ts';
import { listAll, PAGE_SIZE } from './live.ts';

describe('listAll', () => {
  it('pages with limit and continue, as kubectl does, until no continue token', async () => {
    const asked: { method: Method; path: string; query: RequestOptions['query'] }[] = [];
    const pages: Record<string, { items: { n: number }[]; metadata: { continue?: string } }> = {
      '': { items: [{ n: 1 }, { n: 2 }], metadata: { continue: 'a' } },
      a: { items: [{ n: 3 }], metadata: { continue: 'b' } },
      b: { items: [{ n: 4 }], metadata: { continue: '' } },
    };
    const kube: KubeRequester = {
      request: <T>(method: Method, path: string, options: RequestOptions = {}): Promise<T> => {
        asked.push({ method, path, query: options.query });
        return Promise.resolve(pages[options.query?.continue ?? ''] as T);
      },
    };
    expect(await listAll(kube, '/api/v1/pods')).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }]);
    expect(asked).toEqual([
      { method: 'GET', path: '/api/v1/pods', query: { limit: '500', continue: undefined } },
      { method: 'GET', path: '/api/v1/pods', query: { limit: '500', continue: 'a' } },
      { method: 'GET', path: '/api/v1/pods', query: { limit: '500', continue: 'b' } },
    ]);
    expect(PAGE_SIZE).toBe(500);
  });
});
