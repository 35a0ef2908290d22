import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CHECK_QUEUE, DELIVERY_QUEUE } from '@herald/queues';
import type { IIoK8sApiCoreV1Container as Container } from 'kubernetes-models/v1/Container';
import type { IIoK8sApiCoreV1PodSpec as PodSpec } from 'kubernetes-models/v1/PodSpec';
import { validateAll, type Rendered } from './k8s-models';
import { heraldEnvNames, readText, renderKustomize } from './workspace';

const OVERLAYS = ['deploy/k8s/base', 'deploy/k8s/overlays/dev', 'deploy/k8s/overlays/prod'];
const REDIS_URL = process.env.HERALD_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Where BullMQ keeps a queue's waiting jobs (the list KEDA's Redis scaler measures). */
const waitList = (prefix: string, queue: string) => `${prefix}:${queue}:wait`;

// Rendered on first use, so a missing kubectl fails every test with its message, never skips.
const rendered = new Map<string, Rendered>();
function get(dir: string): Rendered {
  if (!rendered.has(dir)) rendered.set(dir, validateAll(renderKustomize(dir), dir));
  return rendered.get(dir) as Rendered;
}

interface Workload {
  name: string;
  spec: PodSpec;
  annotations: Record<string, string>;
}

function workloads(r: Rendered): Workload[] {
  return [
    ...r.deployments.map((d) => ({ name: `Deployment ${d.metadata?.name}`, spec: d.spec?.template.spec as PodSpec, annotations: d.spec?.template.metadata?.annotations ?? {} })),
    ...r.jobs.map((j) => ({ name: `Job ${j.metadata?.name}`, spec: j.spec?.template.spec as PodSpec, annotations: j.spec?.template.metadata?.annotations ?? {} })),
  ];
}

const allContainers = (spec: PodSpec): Container[] => [...(spec.initContainers ?? []), ...spec.containers];

function deployment(r: Rendered, name: string) {
  const found = r.deployments.find((d) => d.metadata?.name === name);
  if (!found) throw new Error(`no Deployment ${name}`);
  return found;
}
const mainContainer = (r: Rendered, name: string) => deployment(r, name).spec?.template.spec?.containers[0] as Container;
const configData = (r: Rendered) => {
  expect(r.configMaps).toHaveLength(1);
  return r.configMaps[0]?.data ?? {};
};
const envValue = (c: Container, name: string) => c.env?.find((e) => e.name === name)?.value;
const preStopSleepSeconds = (c: Container) => {
  const command = c.lifecycle?.preStop?.exec?.command ?? [];
  return command[0] === 'sleep' ? Number(command[1]) : (c.lifecycle?.preStop?.sleep?.seconds ?? 0);
};

describe.each(OVERLAYS)('%s', (dir) => {
  it('renders only documents that match their Kubernetes or KEDA schema', () => {
    const r = get(dir);
    expect(r.all.length).toBeGreaterThan(10);
    expect(r.deployments.map((d) => d.metadata?.name).sort()).toEqual(['herald-api', 'herald-worker']);
    expect(r.jobs.map((j) => j.metadata?.name)).toEqual(['herald-migrate']);
  });

  it('gives every container limits, a non-root read-only securityContext and a writable /tmp', () => {
    for (const w of workloads(get(dir))) {
      const pod = w.spec.securityContext ?? {};
      expect(pod.runAsNonRoot, w.name).toBe(true);
      expect(pod.runAsUser, w.name).toBeGreaterThan(0);
      expect(pod.seccompProfile?.type, w.name).toBe('RuntimeDefault');
      expect(w.spec.automountServiceAccountToken, w.name).toBe(false);
      for (const c of allContainers(w.spec)) {
        const where = `${w.name} container ${c.name}`;
        for (const kind of ['requests', 'limits'] as const) {
          expect(c.resources?.[kind]?.cpu, `${where} ${kind}.cpu`).toBeDefined();
          expect(c.resources?.[kind]?.memory, `${where} ${kind}.memory`).toBeDefined();
        }
        const sc = c.securityContext ?? {};
        expect(sc.allowPrivilegeEscalation, where).toBe(false);
        expect(sc.readOnlyRootFilesystem, where).toBe(true);
        expect(sc.runAsNonRoot ?? pod.runAsNonRoot, where).toBe(true);
        expect(sc.capabilities?.drop, where).toContain('ALL');
        expect(sc.capabilities?.add ?? [], where).toEqual([]);
        expect((sc.seccompProfile ?? pod.seccompProfile)?.type, where).toBe('RuntimeDefault');
        // npm and Node write only under /tmp (NPM_CONFIG_CACHE in the image), an emptyDir.
        const tmp = c.volumeMounts?.find((m) => m.mountPath === '/tmp');
        expect(tmp, `${where} mounts /tmp`).toBeDefined();
        expect(w.spec.volumes?.find((v) => v.name === tmp?.name)?.emptyDir, `${where} /tmp is an emptyDir`).toBeDefined();
      }
    }
  });

  it('probes every serving container: startup and liveness on /healthz, readiness on /readyz, on its own port', () => {
    const r = get(dir);
    for (const d of r.deployments) {
      const spec = d.spec?.template.spec as PodSpec;
      for (const c of spec.containers) {
        const where = `${d.metadata?.name}/${c.name}`;
        const port = c.ports?.[0];
        expect(port?.containerPort, where).toBe(Number(configData(r).PORT ?? 3000));
        expect(c.startupProbe?.httpGet?.path, where).toBe('/healthz');
        expect(c.livenessProbe?.httpGet?.path, where).toBe('/healthz');
        expect(c.readinessProbe?.httpGet?.path, where).toBe('/readyz');
        for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe]) expect([port?.name, port?.containerPort], where).toContain(probe?.httpGet?.port);
        // A dependency outage must not restart pods: liveness gives a stuck loop 20 s or more.
        expect((c.livenessProbe?.periodSeconds ?? 10) * (c.livenessProbe?.failureThreshold ?? 3), where).toBeGreaterThanOrEqual(20);
        expect(preStopSleepSeconds(c), `${where} preStop sleep`).toBeGreaterThan(0);
      }
      const annotations = d.spec?.template.metadata?.annotations ?? {};
      expect(annotations['prometheus.io/scrape']).toBe('true');
      expect(annotations['prometheus.io/path']).toBe('/metrics');
      expect(Number(annotations['prometheus.io/port'])).toBe(spec.containers[0]?.ports?.[0]?.containerPort);
    }
  });

  it('runs API and workers from one image, told apart only by HERALD_ROLE, and migrates before serving', () => {
    const r = get(dir);
    const api = mainContainer(r, 'herald-api');
    const worker = mainContainer(r, 'herald-worker');
    expect(envValue(api, 'HERALD_ROLE')).toBe('api');
    expect(envValue(worker, 'HERALD_ROLE')).toBe('worker');
    const images = new Set(workloads(r).flatMap((w) => allContainers(w.spec).map((c) => c.image)));
    expect([...images]).toHaveLength(1);
    expect({ ...api, env: [] }).toEqual({ ...worker, env: [], resources: api.resources, ports: api.ports });

    // `npm run migrate` is the bundle's migrate command, in the Job and before every pod.
    expect(JSON.parse(readText('package.json')).scripts.migrate).toBe('exec node dist/apps/server/main.js migrate');
    const job = r.jobs[0]?.spec?.template.spec as PodSpec;
    expect(job.containers[0]?.command).toEqual(['npm', 'run', 'migrate']);
    expect(job.restartPolicy).toBe('Never');
    for (const name of ['herald-api', 'herald-worker']) {
      const init = deployment(r, name).spec?.template.spec?.initContainers ?? [];
      expect(init.map((c) => c.command)).toEqual([['npm', 'run', 'migrate']]);
    }
  });

  it('gives each process longer to stop than its drain deadline, and the drain longer than the slowest job', () => {
    const r = get(dir);
    const config = configData(r);
    const shutdownMs = Number(config.HERALD_SHUTDOWN_TIMEOUT_MS);
    expect(shutdownMs).toBeGreaterThan(0);
    const slowestJobMs = Math.max(...['HERALD_WEBHOOK_TIMEOUT_MS', 'HERALD_CHECK_TIMEOUT_MS', 'HERALD_AMQP_CONFIRM_TIMEOUT_MS'].map((k) => Number(config[k])));
    expect(slowestJobMs).toBeGreaterThan(0);
    expect(shutdownMs).toBeGreaterThan(slowestJobMs);
    for (const name of ['herald-api', 'herald-worker']) {
      const spec = deployment(r, name).spec?.template.spec as PodSpec;
      const budget = (spec.terminationGracePeriodSeconds ?? 30) * 1000;
      expect(budget, name).toBeGreaterThan(preStopSleepSeconds(spec.containers[0] as Container) * 1000 + shutdownMs);
    }
  });

  it('uses only environment variables Herald reads (a typo fails here)', () => {
    const r = get(dir);
    const known = heraldEnvNames();
    expect(known.size).toBeGreaterThan(25);
    for (const name of ['DATABASE_URL', 'REDIS_URL', 'AMQP_URL', 'HERALD_API_KEYS', 'HERALD_ROLE', 'HERALD_SHUTDOWN_TIMEOUT_MS']) expect(known).toContain(name);
    const used = new Set(Object.keys(configData(r)));
    for (const s of r.secrets.filter((s) => s.metadata?.name === 'herald-secrets')) for (const k of Object.keys({ ...s.data, ...s.stringData })) used.add(k);
    for (const w of workloads(r)) {
      for (const c of allContainers(w.spec)) {
        for (const e of c.env ?? []) {
          used.add(e.name);
          if (e.valueFrom?.secretKeyRef) {
            expect(e.valueFrom.secretKeyRef.name).toBe('herald-secrets');
            used.add(e.valueFrom.secretKeyRef.key);
          }
        }
        for (const from of c.envFrom ?? []) expect([from.configMapRef?.name?.startsWith('herald-config'), from.secretRef?.name]).toContain(from.configMapRef ? true : 'herald-secrets');
      }
    }
    const unknown = [...used].filter((n) => !known.has(n));
    expect(unknown, 'variables Herald never reads').toEqual([]);
  });

  it('routes the Service to the API only, and budgets disruptions per role', () => {
    const r = get(dir);
    const [service] = r.services;
    expect(r.services).toHaveLength(1);
    const apiLabels = deployment(r, 'herald-api').spec?.template.metadata?.labels ?? {};
    const workerLabels = deployment(r, 'herald-worker').spec?.template.metadata?.labels ?? {};
    const matches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
    const selector = service?.spec?.selector ?? {};
    expect(matches(selector, apiLabels)).toBe(true);
    expect(matches(selector, workerLabels)).toBe(false);
    expect(service?.spec?.ports?.[0]?.targetPort).toBe(mainContainer(r, 'herald-api').ports?.[0]?.name);
    for (const [name, labels] of [['herald-api', apiLabels], ['herald-worker', workerLabels]] as const) {
      const pdb = r.pdbs.find((p) => p.metadata?.name === name);
      expect(pdb, name).toBeDefined();
      expect(matches(pdb?.spec?.selector?.matchLabels ?? {}, labels), name).toBe(true);
      expect(pdb?.spec?.maxUnavailable ?? pdb?.spec?.minAvailable, name).toBeDefined();
    }
  });

  it('admits only the API port, and lets pods reach DNS and their backing services (workers: webhooks too)', () => {
    const r = get(dir);
    const policy = (component: string) => {
      const p = r.networkPolicies.find((n) => n.spec?.podSelector?.matchLabels?.['app.kubernetes.io/component'] === component);
      expect(p, component).toBeDefined();
      return p?.spec;
    };
    const egressPorts = (component: string) => new Set((policy(component)?.egress ?? []).flatMap((e) => (e.ports ?? []).map((p) => p.port)));
    const port = mainContainer(r, 'herald-api').ports?.[0]?.containerPort;
    for (const component of ['api', 'worker']) {
      expect(policy(component)?.policyTypes).toEqual(['Ingress', 'Egress']);
      expect(policy(component)?.ingress?.flatMap((i) => (i.ports ?? []).map((p) => p.port))).toEqual([port]);
      for (const needed of [53, 3306, 6379]) expect(egressPorts(component), `${component} egress ${needed}`).toContain(needed);
    }
    expect(egressPorts('worker')).toContain(5672);
    const internet = policy('worker')?.egress?.flatMap((e) => e.to ?? []).find((t) => t.ipBlock?.cidr === '0.0.0.0/0');
    expect(internet?.ipBlock?.except).toEqual(expect.arrayContaining(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16']));
    expect(egressPorts('migrate')).toEqual(new Set([53, 3306]));
  });
});

describe('autoscaling', () => {
  it('scales the API on CPU with an autoscaling/v2 HPA and the workers on backlog with KEDA (base, prod)', () => {
    for (const dir of ['deploy/k8s/base', 'deploy/k8s/overlays/prod']) {
      const r = get(dir);
      expect(r.hpas).toHaveLength(1);
      const hpa = r.hpas[0]?.spec;
      expect(hpa?.scaleTargetRef).toMatchObject({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'herald-api' });
      expect(hpa?.metrics?.[0]?.resource?.name).toBe('cpu');
      expect(hpa?.minReplicas ?? 1).toBeGreaterThanOrEqual(2);
      expect(r.scaledObjects).toHaveLength(1);
      const so = r.scaledObjects[0]?.spec;
      expect(so?.scaleTargetRef).toMatchObject({ name: 'herald-worker' });
      // Workers also run the check sweep and the reconciler: never scale them to zero.
      expect(so?.minReplicaCount ?? 0).toBeGreaterThanOrEqual(1);
      expect(so?.maxReplicaCount ?? 0).toBeGreaterThan(so?.minReplicaCount ?? 0);
      // Replicas are the autoscalers' to set; an apply must not reset them.
      for (const d of r.deployments) expect(d.spec?.replicas, d.metadata?.name).toBeUndefined();
    }
    expect(get('deploy/k8s/overlays/prod').hpas[0]?.spec?.minReplicas).toBeGreaterThan(get('deploy/k8s/base').hpas[0]?.spec?.minReplicas ?? 0);
  });

  it("watches the wait lists of Herald's own queues under the configured prefix, with working authentication", () => {
    for (const dir of ['deploy/k8s/base', 'deploy/k8s/overlays/prod']) {
      const r = get(dir);
      const prefix = configData(r).HERALD_QUEUE_PREFIX ?? 'herald';
      const redisTriggers = r.scaledObjects[0]?.spec?.triggers.filter((t) => t.type === 'redis') ?? [];
      expect(redisTriggers.map((t) => t.metadata.listName).sort()).toEqual([waitList(prefix, CHECK_QUEUE), waitList(prefix, DELIVERY_QUEUE)].sort());
      for (const t of redisTriggers) {
        expect(Number(t.metadata.listLength), `${dir} listLength`).toBeGreaterThan(0);
        const auth = r.triggerAuthentications.find((a) => a.metadata?.name === t.authenticationRef?.name);
        expect(auth, `${dir} TriggerAuthentication ${t.authenticationRef?.name}`).toBeDefined();
        expect(auth?.spec?.secretTargetRef?.map((s) => s.parameter).sort()).toEqual(['address', 'password']);
      }
    }
  });

  it('the wait list KEDA reads is where BullMQ really puts a waiting delivery job', async () => {
    const prefix = `herald_t_keda_${randomBytes(3).toString('hex')}`;
    const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const queue = new Queue(DELIVERY_QUEUE, { connection, prefix });
    try {
      await queue.add('deliver', { deliveryId: 1, generation: 1, attempt: 1 }, { jobId: 'd-1-1-1' });
      await queue.add('deliver', { deliveryId: 2, generation: 1, attempt: 1 }, { jobId: 'd-2-1-1' });
      expect(await connection.llen(waitList(prefix, DELIVERY_QUEUE))).toBe(2);
    } finally {
      await queue.obliterate({ force: true });
      await queue.close();
      connection.disconnect();
    }
  });
});

describe('overlays', () => {
  it('dev: one replica each, no KEDA or HPA needed, development-only credentials', () => {
    const r = get('deploy/k8s/overlays/dev');
    for (const d of r.deployments) expect(d.spec?.replicas, d.metadata?.name).toBe(1);
    expect(r.hpas).toEqual([]);
    expect(r.scaledObjects).toEqual([]);
    expect(r.triggerAuthentications).toEqual([]);
    const secret = r.secrets.find((s) => s.metadata?.name === 'herald-secrets');
    expect(secret?.stringData?.HERALD_API_KEYS).toContain('NOT-FOR-PRODUCTION');
    expect(readText('deploy/k8s/overlays/dev/secrets.yaml')).toMatch(/DEVELOPMENT ONLY/);
    for (const x of r.all) expect((x as { metadata?: { namespace?: string } }).metadata?.namespace ?? 'herald-dev').toBe('herald-dev');
  });

  it('prod: a pinned image, no Secret from this repository, larger requests than base', () => {
    const r = get('deploy/k8s/overlays/prod');
    expect(r.secrets).toEqual([]);
    const image = mainContainer(r, 'herald-api').image ?? '';
    const tag = /:([^:/@]+)(@sha256:[a-f0-9]{64})?$/.exec(image)?.[1];
    expect(tag, image).toBeDefined();
    expect(tag).not.toBe('latest');
    const cpu = (r2: Rendered) => mainContainer(r2, 'herald-api').resources?.requests?.cpu;
    const millis = (v: unknown) => (String(v).endsWith('m') ? parseFloat(String(v)) : parseFloat(String(v)) * 1000);
    expect(millis(cpu(r))).toBeGreaterThan(millis(cpu(get('deploy/k8s/base'))));
    // The Secrets the pods and KEDA name must be created outside: the overlay says which.
    const text = readText('deploy/k8s/overlays/prod/kustomization.yaml');
    for (const key of ['herald-secrets', 'herald-keda-redis', 'DATABASE_URL', 'REDIS_URL', 'AMQP_URL', 'HERALD_API_KEYS', 'HERALD_CHECK_SECRET']) expect(text).toContain(key);
  });

  it('base: only placeholders in its Secrets', () => {
    const r = get('deploy/k8s/base');
    for (const s of r.secrets) for (const [k, v] of Object.entries(s.stringData ?? {})) expect(v, `${s.metadata?.name}.${k}`).toMatch(/CHANGE-ME|^redis:6379$/);
  });
});
