// kube-apiserver's printers (pkg/printers/internalversion/printers.go) for the built-in kinds this
// server stores: the same columns, in the same order, with the same cells. The server always
// prints wide (GenerateOptions{Wide: true}); clients hide priority-1 columns unless `-o wide`.
// Descriptions other than Name's and Age's are shortened from the API's swagger docs.
import { isObject, meta, str, strMap, type Json, type JsonObject } from './json.ts';
import {
  AGE_COLUMN,
  DEFAULT_PRINTER,
  NAME_COLUMN,
  NAME_DESCRIPTION,
  column,
  parseTime,
  since,
  humanDuration,
  type Printer,
} from './printing.ts';

const obj = (v: Json | undefined): JsonObject => (isObject(v) ? v : {});
const list = (v: Json | undefined): JsonObject[] => (Array.isArray(v) ? v.filter(isObject) : []);
const num = (v: Json | undefined): number => (typeof v === 'number' ? Math.trunc(v) : 0);
const age = (o: JsonObject, now: Date): string => since(meta(o).creationTimestamp, now);
const wide = (name: string, description: string, type = 'string') =>
  column(name, type, description, { priority: 1 });

// ---- nodes -------------------------------------------------------------------------------

function nodeRoles(labels: Record<string, string>): string[] {
  const roles = new Set<string>();
  for (const [k, v] of Object.entries(labels)) {
    if (k.startsWith('node-role.kubernetes.io/')) {
      const role = k.slice('node-role.kubernetes.io/'.length);
      if (role !== '') roles.add(role);
    } else if (k === 'kubernetes.io/role' && v !== '') roles.add(v);
  }
  return [...roles].sort();
}

function nodeAddress(node: JsonObject, type: string): string {
  const found = list(obj(node.status).addresses).find((a) => a.type === type);
  return found === undefined ? '<none>' : str(found.address);
}

const NODE: Printer = {
  columns: [
    NAME_COLUMN,
    column('Status', 'string', 'The status of the node'),
    column('Roles', 'string', 'The roles of the node'),
    AGE_COLUMN,
    column('Version', 'string', 'Kubelet Version reported by the node.'),
    wide('Internal-IP', 'List of addresses reachable to the node.'),
    wide('External-IP', 'List of addresses reachable to the node.'),
    wide(
      'OS-Image',
      'OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).',
    ),
    wide(
      'Kernel-Version',
      "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
    ),
    wide(
      'Container-Runtime',
      'ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).',
    ),
  ],
  cells(node, now) {
    const status = obj(node.status);
    const ready = list(status.conditions).find((c) => c.type === 'Ready');
    const states: string[] = [];
    if (ready !== undefined) states.push(ready.status === 'True' ? 'Ready' : 'NotReady');
    if (states.length === 0) states.push('Unknown');
    if (obj(node.spec).unschedulable === true) states.push('SchedulingDisabled');
    const roles = nodeRoles(strMap(meta(node).labels)).join(',');
    const info = obj(status.nodeInfo);
    const orUnknown = (v: Json | undefined): string => str(v) || '<unknown>';
    return [
      str(meta(node).name),
      states.join(','),
      roles === '' ? '<none>' : roles,
      age(node, now),
      str(info.kubeletVersion),
      nodeAddress(node, 'InternalIP'),
      nodeAddress(node, 'ExternalIP'),
      orUnknown(info.osImage),
      orUnknown(info.kernelVersion),
      orUnknown(info.containerRuntimeVersion),
    ];
  },
};

// ---- namespaces, leases, secrets, configmaps, serviceaccounts -----------------------------

const NAMESPACE: Printer = {
  columns: [NAME_COLUMN, column('Status', 'string', 'The status of the namespace'), AGE_COLUMN],
  cells: (ns, now) => [str(meta(ns).name), str(obj(ns.status).phase), age(ns, now)],
};

const LEASE: Printer = {
  columns: [
    NAME_COLUMN,
    column(
      'Holder',
      'string',
      'holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.',
    ),
    AGE_COLUMN,
  ],
  cells: (lease, now) => [
    str(meta(lease).name),
    str(obj(lease.spec).holderIdentity),
    age(lease, now),
  ],
};

const SECRET: Printer = {
  columns: [
    NAME_COLUMN,
    column('Type', 'string', 'Used to facilitate programmatic handling of secret data.'),
    column('Data', 'string', 'Data contains the secret data.'),
    AGE_COLUMN,
  ],
  cells: (s, now) => [str(meta(s).name), str(s.type), Object.keys(obj(s.data)).length, age(s, now)],
};

const CONFIGMAP: Printer = {
  columns: [
    NAME_COLUMN,
    column('Data', 'string', 'Data contains the configuration data.'),
    AGE_COLUMN,
  ],
  cells: (cm, now) => [
    str(meta(cm).name),
    Object.keys(obj(cm.data)).length + Object.keys(obj(cm.binaryData)).length,
    age(cm, now),
  ],
};

const SERVICEACCOUNT: Printer = {
  columns: [
    NAME_COLUMN,
    column('Secrets', 'string', 'Secrets is a list of the secrets in the same namespace.'),
    AGE_COLUMN,
  ],
  cells: (sa, now) => [str(meta(sa).name), list(sa.secrets).length, age(sa, now)],
};

// ---- pods ---------------------------------------------------------------------------------

function hasCondition(conditions: JsonObject[], type: string): boolean {
  return conditions.some((c) => c.type === type && c.status === 'True');
}

function terminatedReason(t: JsonObject, prefix: string): string {
  if (str(t.reason) !== '') return `${prefix}${str(t.reason)}`;
  if (num(t.signal) !== 0) return `${prefix}Signal:${num(t.signal)}`;
  return `${prefix}ExitCode:${num(t.exitCode)}`;
}

const POD: Printer = {
  columns: [
    NAME_COLUMN,
    column('Ready', 'string', 'The aggregate readiness state of this pod for accepting traffic.'),
    column('Status', 'string', 'The aggregate status of the containers in this pod.'),
    column(
      'Restarts',
      'string',
      'The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.',
    ),
    AGE_COLUMN,
    wide('IP', 'podIP address allocated to the pod.'),
    wide('Node', 'NodeName indicates in which node this pod is scheduled.'),
    wide(
      'Nominated Node',
      'nominatedNodeName is set only when this pod preempts other pods on the node.',
    ),
    wide(
      'Readiness Gates',
      'If specified, all readiness gates will be evaluated for pod readiness.',
    ),
  ],
  conditions(pod) {
    const phase = str(obj(pod.status).phase);
    if (phase === 'Succeeded') {
      return [
        {
          type: 'Completed',
          status: 'True',
          reason: 'Succeeded',
          message: 'The pod has completed successfully.',
        },
      ];
    }
    if (phase === 'Failed') {
      return [{ type: 'Completed', status: 'True', reason: 'Failed', message: 'The pod failed.' }];
    }
    return undefined;
  },
  cells(pod, now) {
    const spec = obj(pod.spec);
    const status = obj(pod.status);
    const conditions = list(status.conditions);
    const initSpecs = list(spec.initContainers);
    const restartable = new Set(
      initSpecs.filter((c) => c.restartPolicy === 'Always').map((c) => str(c.name)),
    );
    let total = list(spec.containers).length + restartable.size;
    let ready = 0;
    let restarts = 0;
    let sidecarRestarts = 0;
    let lastRestart = 0;
    let lastSidecarRestart = 0;
    const phase = str(status.phase);
    let reason = str(status.reason) || phase;
    for (const c of conditions) {
      if (c.type === 'PodScheduled' && c.reason === 'SchedulingGated') reason = 'SchedulingGated';
    }
    const finishedAt = (cs: JsonObject): number =>
      parseTime(obj(obj(cs.lastState).terminated).finishedAt) ?? 0;
    let initializing = false;
    const inits = list(status.initContainerStatuses);
    for (const [i, cs] of inits.entries()) {
      restarts += num(cs.restartCount);
      lastRestart = Math.max(lastRestart, finishedAt(cs) || 0);
      const isSidecar = restartable.has(str(cs.name));
      if (isSidecar) {
        sidecarRestarts += num(cs.restartCount);
        lastSidecarRestart = Math.max(lastSidecarRestart, finishedAt(cs) || 0);
      }
      const state = obj(cs.state);
      const terminated = isObject(state.terminated) ? state.terminated : undefined;
      const waiting = isObject(state.waiting) ? state.waiting : undefined;
      if (terminated !== undefined && num(terminated.exitCode) === 0) continue;
      if (isSidecar && cs.started === true) {
        if (cs.ready === true) ready++;
        continue;
      }
      if (terminated !== undefined) reason = terminatedReason(terminated, 'Init:');
      else if (
        waiting !== undefined &&
        str(waiting.reason) !== '' &&
        waiting.reason !== 'PodInitializing'
      ) {
        reason = `Init:${str(waiting.reason)}`;
      } else reason = `Init:${i}/${initSpecs.length}`;
      initializing = true;
      break;
    }
    if (!initializing || hasCondition(conditions, 'Initialized')) {
      restarts = sidecarRestarts;
      lastRestart = lastSidecarRestart;
      let running = false;
      const statuses = list(status.containerStatuses);
      for (let i = statuses.length - 1; i >= 0; i--) {
        const cs = statuses[i]!;
        restarts += num(cs.restartCount);
        lastRestart = Math.max(lastRestart, finishedAt(cs) || 0);
        const state = obj(cs.state);
        const waiting = obj(state.waiting);
        const terminated = isObject(state.terminated) ? state.terminated : undefined;
        if (str(waiting.reason) !== '') reason = str(waiting.reason);
        else if (terminated !== undefined) reason = terminatedReason(terminated, '');
        else if (cs.ready === true && isObject(state.running)) {
          running = true;
          ready++;
        }
      }
      if (reason === 'Completed' && running) {
        reason = hasCondition(conditions, 'Ready') ? 'Running' : 'NotReady';
      }
    }
    const deleting = meta(pod).deletionTimestamp !== undefined;
    if (deleting && status.reason === 'NodeLost') reason = 'Unknown';
    else if (deleting && phase !== 'Succeeded' && phase !== 'Failed') reason = 'Terminating';
    let restartsCell = String(restarts);
    if (restarts !== 0 && lastRestart !== 0) {
      restartsCell = `${restarts} (${humanDuration(now.getTime() - lastRestart)} ago)`;
    }
    const gates = list(spec.readinessGates);
    const gatesTrue = gates.filter((g) =>
      conditions.some((c) => c.type === g.conditionType && c.status === 'True'),
    ).length;
    total = Math.max(total, 0);
    return [
      str(meta(pod).name),
      `${ready}/${total}`,
      reason,
      restartsCell,
      age(pod, now),
      str(list(status.podIPs)[0]?.ip) || '<none>',
      str(spec.nodeName) || '<none>',
      str(status.nominatedNodeName) || '<none>',
      gates.length > 0 ? `${gatesTrue}/${gates.length}` : '<none>',
    ];
  },
};

// ---- events (core/v1 and events.k8s.io/v1, printed through the same internal Event) -------

interface EventFields {
  name: string;
  type: string;
  reason: string;
  kind: string;
  objectName: string;
  fieldPath: string;
  component: string;
  host: string;
  message: string;
  first: Json | undefined;
  last: Json | undefined;
  eventTime: Json | undefined;
  count: number;
  series: JsonObject | undefined;
}

function eventCells(e: EventFields, now: Date): Json[] {
  let first = since(e.first, now);
  if (parseTime(e.first) === undefined) first = since(e.eventTime, now);
  let last = parseTime(e.last) === undefined ? first : since(e.last, now);
  let count = e.count;
  if (e.series !== undefined) {
    last = since(e.series.lastObservedTime, now);
    count = num(e.series.count);
  } else if (count === 0) count = 1;
  const target =
    e.objectName !== '' ? `${e.kind.toLowerCase()}/${e.objectName}` : e.kind.toLowerCase();
  const source =
    e.component === '' ? '<unknown>' : e.host === '' ? e.component : `${e.component}, ${e.host}`;
  return [
    last,
    e.type,
    e.reason,
    target,
    e.fieldPath,
    source,
    e.message.trim(),
    first,
    count,
    e.name,
  ];
}

const EVENT_COLUMNS = [
  column(
    'Last Seen',
    'string',
    'The time at which the most recent occurrence of this event was recorded.',
  ),
  column(
    'Type',
    'string',
    'Type of this event (Normal, Warning), new types could be added in the future',
  ),
  column(
    'Reason',
    'string',
    "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
  ),
  column('Object', 'string', 'The object that this event is about.'),
  wide(
    'Subobject',
    'If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement.',
  ),
  wide(
    'Source',
    'The component reporting this event. Should be a short machine understandable string.',
  ),
  column('Message', 'string', 'A human-readable description of the status of this operation.'),
  wide(
    'First Seen',
    'The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)',
  ),
  wide('Count', 'The number of times this event has occurred.'),
  column('Name', 'string', NAME_DESCRIPTION, { format: 'name', priority: 1 }),
];

const CORE_EVENT: Printer = {
  columns: EVENT_COLUMNS,
  cells(e, now) {
    const involved = obj(e.involvedObject);
    const source = obj(e.source);
    return eventCells(
      {
        name: str(meta(e).name),
        type: str(e.type),
        reason: str(e.reason),
        kind: str(involved.kind),
        objectName: str(involved.name),
        fieldPath: str(involved.fieldPath),
        component: str(source.component) || str(e.reportingComponent),
        host: str(source.host) || str(e.reportingInstance),
        message: str(e.message),
        first: e.firstTimestamp,
        last: e.lastTimestamp,
        eventTime: e.eventTime,
        count: num(e.count),
        series: isObject(e.series) ? e.series : undefined,
      },
      now,
    );
  },
};

const EVENTS_V1_EVENT: Printer = {
  columns: EVENT_COLUMNS,
  cells(e, now) {
    const regarding = obj(e.regarding);
    const source = obj(e.deprecatedSource);
    return eventCells(
      {
        name: str(meta(e).name),
        type: str(e.type),
        reason: str(e.reason),
        kind: str(regarding.kind),
        objectName: str(regarding.name),
        fieldPath: str(regarding.fieldPath),
        component: str(source.component) || str(e.reportingController),
        host: str(source.host) || str(e.reportingInstance),
        message: str(e.note),
        first: e.deprecatedFirstTimestamp,
        last: e.deprecatedLastTimestamp,
        eventTime: e.eventTime,
        count: num(e.deprecatedCount),
        series: isObject(e.series) ? e.series : undefined,
      },
      now,
    );
  },
};

// ---- RBAC ---------------------------------------------------------------------------------

function bindingPrinter(kind: string): Printer {
  return {
    columns: [
      NAME_COLUMN,
      column(
        'Role',
        'string',
        `RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.`,
      ),
      AGE_COLUMN,
      wide('Users', `Users in the ${kind}`),
      wide('Groups', `Groups in the ${kind}`),
      wide('ServiceAccounts', `ServiceAccounts in the ${kind}`),
    ],
    cells(b, now) {
      const ref = obj(b.roleRef);
      const subjects = list(b.subjects);
      const of = (k: string): JsonObject[] => subjects.filter((s) => s.kind === k);
      return [
        str(meta(b).name),
        `${str(ref.kind)}/${str(ref.name)}`,
        age(b, now),
        of('User')
          .map((s) => str(s.name))
          .join(', '),
        of('Group')
          .map((s) => str(s.name))
          .join(', '),
        of('ServiceAccount')
          .map((s) => `${str(s.namespace)}/${str(s.name)}`)
          .join(', '),
      ];
    },
  };
}

// ---- workloads ----------------------------------------------------------------------------

const CONTAINERS = wide('Containers', 'Names of each container in the template.');
const IMAGES = wide('Images', 'Images referenced by each container in the template.');
const SELECTOR = wide('Selector', 'A label query over pods that should match the replica count.');

function templateContainers(template: Json | undefined): [string, string] {
  const containers = list(obj(obj(template).spec).containers);
  return [
    containers.map((c) => str(c.name)).join(','),
    containers.map((c) => str(c.image)).join(','),
  ];
}

/** labels.Selector's String() of a metav1.LabelSelector: requirements sorted by key. */
function selectorString(selector: Json | undefined): string {
  if (!isObject(selector)) return '';
  const parts: { key: string; text: string }[] = [];
  for (const [k, v] of Object.entries(strMap(selector.matchLabels)))
    parts.push({ key: k, text: `${k}=${v}` });
  for (const e of list(selector.matchExpressions)) {
    const key = str(e.key);
    const values = (Array.isArray(e.values) ? e.values.map((x) => str(x)) : []).sort().join(',');
    const text =
      e.operator === 'In'
        ? `${key} in (${values})`
        : e.operator === 'NotIn'
          ? `${key} notin (${values})`
          : e.operator === 'Exists'
            ? key
            : `!${key}`;
    parts.push({ key, text });
  }
  return parts
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((p) => p.text)
    .join(',');
}

const formatSelector = (s: Json | undefined): string => selectorString(s) || '<none>';
const replicas = (spec: JsonObject): number =>
  typeof spec.replicas === 'number' ? spec.replicas : 1;

const DEPLOYMENT: Printer = {
  columns: [
    NAME_COLUMN,
    column('Ready', 'string', 'Number of the pod with ready state'),
    column(
      'Up-to-date',
      'string',
      'Total number of non-terminated pods targeted by this deployment that have the desired template spec.',
    ),
    column(
      'Available',
      'string',
      'Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.',
    ),
    AGE_COLUMN,
    CONTAINERS,
    IMAGES,
    SELECTOR,
  ],
  cells(d, now) {
    const spec = obj(d.spec);
    const status = obj(d.status);
    return [
      str(meta(d).name),
      `${num(status.readyReplicas)}/${replicas(spec)}`,
      num(status.updatedReplicas),
      num(status.availableReplicas),
      age(d, now),
      ...templateContainers(spec.template),
      selectorString(spec.selector),
    ];
  },
};

const REPLICASET: Printer = {
  columns: [
    NAME_COLUMN,
    column('Desired', 'integer', 'Replicas is the number of desired replicas.'),
    column('Current', 'integer', 'Replicas is the most recently observed number of replicas.'),
    column('Ready', 'integer', 'The number of ready replicas for this replica set.'),
    AGE_COLUMN,
    CONTAINERS,
    IMAGES,
    SELECTOR,
  ],
  cells(rs, now) {
    const spec = obj(rs.spec);
    const status = obj(rs.status);
    return [
      str(meta(rs).name),
      replicas(spec),
      num(status.replicas),
      num(status.readyReplicas),
      age(rs, now),
      ...templateContainers(spec.template),
      selectorString(spec.selector),
    ];
  },
};

const STATEFULSET: Printer = {
  columns: [
    NAME_COLUMN,
    column('Ready', 'string', 'Number of the pod with ready state'),
    AGE_COLUMN,
    CONTAINERS,
    IMAGES,
  ],
  cells(s, now) {
    const spec = obj(s.spec);
    return [
      str(meta(s).name),
      `${num(obj(s.status).readyReplicas)}/${replicas(spec)}`,
      age(s, now),
      ...templateContainers(spec.template),
    ];
  },
};

const DAEMONSET: Printer = {
  columns: [
    NAME_COLUMN,
    column(
      'Desired',
      'integer',
      'The total number of nodes that should be running the daemon pod.',
    ),
    column(
      'Current',
      'integer',
      'The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.',
    ),
    column(
      'Ready',
      'integer',
      'The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.',
    ),
    column(
      'Up-to-date',
      'integer',
      'The total number of nodes that are running updated daemon pod',
    ),
    column(
      'Available',
      'integer',
      'The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.',
    ),
    column(
      'Node Selector',
      'string',
      'NodeSelector is a selector which must be true for the pod to fit on a node.',
    ),
    AGE_COLUMN,
    CONTAINERS,
    IMAGES,
    SELECTOR,
  ],
  cells(ds, now) {
    const spec = obj(ds.spec);
    const status = obj(ds.status);
    const nodeSelector = Object.entries(strMap(obj(obj(spec.template).spec).nodeSelector))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    return [
      str(meta(ds).name),
      num(status.desiredNumberScheduled),
      num(status.currentNumberScheduled),
      num(status.numberReady),
      num(status.updatedNumberScheduled),
      num(status.numberAvailable),
      nodeSelector === '' ? '<none>' : nodeSelector,
      age(ds, now),
      ...templateContainers(spec.template),
      selectorString(spec.selector),
    ];
  },
};

const JOB: Printer = {
  columns: [
    NAME_COLUMN,
    column('Status', 'string', 'Status of the job.'),
    column('Completions', 'string', 'The number of pods which reached phase Succeeded.'),
    column('Duration', 'string', 'Time required to complete the job.'),
    AGE_COLUMN,
    CONTAINERS,
    IMAGES,
    SELECTOR,
  ],
  cells(job, now) {
    const spec = obj(job.spec);
    const status = obj(job.status);
    const succeeded = num(status.succeeded);
    const parallelism = num(spec.parallelism);
    const completions =
      typeof spec.completions === 'number'
        ? `${succeeded}/${spec.completions}`
        : parallelism > 1
          ? `${succeeded}/1 of ${parallelism}`
          : `${succeeded}/1`;
    const start = parseTime(status.startTime);
    const end = parseTime(status.completionTime);
    const duration =
      start === undefined || Number.isNaN(start)
        ? ''
        : humanDuration((end === undefined || Number.isNaN(end) ? now.getTime() : end) - start);
    const conditions = list(status.conditions);
    const states: [string, string][] = [
      ['Complete', 'Complete'],
      ['Failed', 'Failed'],
    ];
    let state = states.find(([type]) => hasCondition(conditions, type))?.[1];
    if (state === undefined && meta(job).deletionTimestamp !== undefined) state = 'Terminating';
    state ??= ['Suspended', 'FailureTarget', 'SuccessCriteriaMet'].find((type) =>
      hasCondition(conditions, type),
    );
    return [
      str(meta(job).name),
      state ?? 'Running',
      completions,
      duration,
      age(job, now),
      ...templateContainers(spec.template),
      formatSelector(spec.selector),
    ];
  },
};

const CRONJOB: Printer = {
  columns: [
    NAME_COLUMN,
    column(
      'Schedule',
      'string',
      'The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.',
    ),
    column(
      'Timezone',
      'string',
      'The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones.',
    ),
    column(
      'Suspend',
      'boolean',
      'This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.',
    ),
    column('Active', 'integer', 'A list of pointers to currently running jobs.'),
    column(
      'Last Schedule',
      'string',
      'Information when was the last time the job was successfully scheduled.',
    ),
    AGE_COLUMN,
    CONTAINERS,
    IMAGES,
    SELECTOR,
  ],
  cells(cj, now) {
    const spec = obj(cj.spec);
    const status = obj(cj.status);
    const jobSpec = obj(obj(spec.jobTemplate).spec);
    const last = status.lastScheduleTime;
    return [
      str(meta(cj).name),
      str(spec.schedule),
      typeof spec.timeZone === 'string' ? spec.timeZone : '<none>',
      typeof spec.suspend === 'boolean' ? (spec.suspend ? 'True' : 'False') : '<unset>',
      list(status.active).length,
      parseTime(last) === undefined ? '<none>' : since(last, now),
      age(cj, now),
      ...templateContainers(jobSpec.template),
      formatSelector(jobSpec.selector),
    ];
  },
};

/** By `group/resource`; kinds absent here get rest's default table convertor. */
export const BUILTIN_PRINTERS: Record<string, Printer> = {
  '/nodes': NODE,
  '/namespaces': NAMESPACE,
  '/pods': POD,
  '/secrets': SECRET,
  '/configmaps': CONFIGMAP,
  '/serviceaccounts': SERVICEACCOUNT,
  '/events': CORE_EVENT,
  'events.k8s.io/events': EVENTS_V1_EVENT,
  'coordination.k8s.io/leases': LEASE,
  'rbac.authorization.k8s.io/roles': DEFAULT_PRINTER,
  'rbac.authorization.k8s.io/clusterroles': DEFAULT_PRINTER,
  'rbac.authorization.k8s.io/rolebindings': bindingPrinter('roleBinding'),
  'rbac.authorization.k8s.io/clusterrolebindings': bindingPrinter('clusterRoleBinding'),
  'apps/deployments': DEPLOYMENT,
  'apps/replicasets': REPLICASET,
  'apps/statefulsets': STATEFULSET,
  'apps/daemonsets': DAEMONSET,
  'batch/jobs': JOB,
  'batch/cronjobs': CRONJOB,
};
