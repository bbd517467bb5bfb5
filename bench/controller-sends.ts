// Preloaded into `prepull controller` by bench/controller.bench.ts (`node --import
// ./bench/controller-sends.ts bin/prepull.js controller …`): notes when the controller sends each
// PrePull status write (a PATCH of …/prepulls/NAME/status, as undici creates the request), on
// the controller's own clock, and writes them at exit to the file
// CONTROLLER_SENDS_FILE names, as JSON { NAME: [ms, …] }. The server sees each write later, by
// however long it waited in the connection and the server's queue; this is the rate the
// controller itself keeps.
import { subscribe } from 'node:diagnostics_channel';
import { writeFileSync } from 'node:fs';

const file = process.env.CONTROLLER_SENDS_FILE;
if (file !== undefined) {
  const sent: Record<string, number[]> = {};
  // undici (which the KubeClient's fetch is) announces every request it creates.
  subscribe('undici:request:create', (message) => {
    const request = (message as { request?: { method?: string; path?: string } }).request;
    if (request?.method !== 'PATCH') return;
    const name = /\/prepulls\/([^/?]+)\/status(\?|$)/.exec(request.path ?? '')?.[1];
    if (name !== undefined) (sent[name] ??= []).push(Math.round(performance.now() * 10) / 10);
  });
  process.on('exit', () => {
    writeFileSync(file, JSON.stringify(sent));
  });
}
