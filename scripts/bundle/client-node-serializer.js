// client-node's ObjectSerializer as its cache.js (ListWatch) uses it: to serialize label and
// field selectors, which are strings and come out unchanged. The real one imports every model
// of the generated API. Only the bundle uses this file (scripts/build.ts, ADR 0005).
export const ObjectSerializer = {
  serialize(data, type) {
    if (type === 'string' && (typeof data === 'string' || data === undefined)) return data;
    throw new Error(`prepull's build serializes only strings, not ${type}`);
  },
};
