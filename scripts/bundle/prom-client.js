// prom-client's metric types, registry and default (process) collectors without its index.js,
// which also loads the Pushgateway client (http, https, zlib) and the cluster aggregator
// (cluster) on import. Only the bundle uses this file (scripts/build.ts, ADR 0005).
export { default as Counter } from 'prom-client/lib/counter.js';
export { default as Gauge } from 'prom-client/lib/gauge.js';
export { default as Histogram } from 'prom-client/lib/histogram.js';
export { default as Registry } from 'prom-client/lib/registry.js';
export { default as collectDefaultMetrics } from 'prom-client/lib/defaultMetrics.js';
