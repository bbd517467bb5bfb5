// Shared by the server's tests and benchmark: a started server with an admin client, and
// CRDs shaped like prepull's (a namespaced kind with status, a cluster-scoped one).
import * as k8s from '@kubernetes/client-node';
import { pollUntil } from '../../src/testing/poll.ts';
import type { JsonObject } from './json.ts';
import { KubeApiServer, type KubeApiServerOptions } from './server.ts';

export const GROUP = 'test.prepull.dev';

export const WIDGET_CRD: JsonObject = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: `widgets.${GROUP}` },
  spec: {
    group: GROUP,
    scope: 'Namespaced',
    names: {
      plural: 'widgets',
      singular: 'widget',
      kind: 'Widget',
      listKind: 'WidgetList',
      shortNames: ['wd'],
    },
    versions: [
      {
        name: 'v1alpha1',
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              spec: {
                type: 'object',
                required: ['images'],
                properties: {
                  images: {
                    type: 'array',
                    minItems: 1,
                    maxItems: 3,
                    items: {
                      type: 'object',
                      required: ['image'],
                      properties: {
                        image: {
                          type: 'string',
                          minLength: 1,
                          maxLength: 20,
                          pattern: '^[a-z0-9./:@-]+$',
                        },
                      },
                    },
                  },
                  pullPolicy: {
                    type: 'string',
                    enum: ['IfNotPresent', 'Always'],
                    default: 'IfNotPresent',
                  },
                  pin: { type: 'boolean', default: true },
                  backoffLimit: {
                    type: 'integer',
                    format: 'int32',
                    minimum: 0,
                    maximum: 10,
                    default: 6,
                  },
                  schedule: { type: 'string', nullable: true },
                  notBefore: { type: 'string', format: 'date-time' },
                  extra: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
                },
              },
              status: {
                type: 'object',
                properties: {
                  phase: { type: 'string' },
                  observedGeneration: { type: 'integer', format: 'int64' },
                },
              },
            },
          },
        },
      },
    ],
  },
};

export const GADGET_CRD: JsonObject = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: `gadgets.${GROUP}` },
  spec: {
    group: GROUP,
    scope: 'Cluster',
    names: { plural: 'gadgets', singular: 'gadget', kind: 'Gadget', listKind: 'GadgetList' },
    versions: [
      {
        name: 'v1alpha1',
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
              status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
            },
          },
        },
      },
    ],
  },
};

export interface Fixture {
  server: KubeApiServer;
  kc: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  custom: k8s.CustomObjectsApi;
}

export function kubeConfigFrom(file: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(file);
  return kc;
}

export async function startFixture(options: KubeApiServerOptions = {}): Promise<Fixture> {
  const server = await KubeApiServer.start(options);
  server.apply(WIDGET_CRD, GADGET_CRD);
  const kc = kubeConfigFrom(server.adminKubeconfig());
  return {
    server,
    kc,
    core: kc.makeApiClient(k8s.CoreV1Api),
    custom: kc.makeApiClient(k8s.CustomObjectsApi),
  };
}

/** The Status body of a failed client-node call. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read Status bodies freely
export async function failure(call: Promise<unknown>): Promise<{ code: number; body: any }> {
  try {
    await call;
  } catch (error) {
    if (error instanceof k8s.ApiException) {
      const raw: unknown = error.body;
      const body =
        typeof raw === 'string' ? (JSON.parse(raw) as JsonObject) : ((raw ?? {}) as JsonObject);
      return { code: error.code, body };
    }
    throw error;
  }
  throw new Error('expected the call to fail');
}

/** Checks every 20 ms until `check` holds, up to `timeoutMs`. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
): Promise<void> {
  await pollUntil('condition', check, { timeoutMs, intervalMs: 20 });
}
