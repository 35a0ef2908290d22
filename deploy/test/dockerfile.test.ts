import { describe, expect, it } from 'vitest';
import { dockerStages, workdir } from './dockerfile';
import { readText } from './workspace';

const stages = dockerStages();
const final = stages.at(-1);
const all = (keyword: string) => stages.flatMap((s) => s.steps.filter((x) => x.keyword === keyword));
const finalSteps = (keyword: string) => final?.steps.filter((x) => x.keyword === keyword) ?? [];

describe('Dockerfile', () => {
  it('builds on a pinned Node 24 slim image in every stage', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const s of stages) expect(s.image, s.name).toMatch(/^node:24(\.\d+){0,2}-(bookworm|trixie)-slim$/);
  });

  it('builds with the lockfile and the workspace build in a stage of its own', () => {
    const build = stages.find((s) => s.name === final?.steps.find((x) => x.keyword === 'COPY' && x.flags.from)?.flags.from);
    expect(build, 'the final stage copies from a named build stage').toBeDefined();
    const runs = build?.steps.filter((x) => x.keyword === 'RUN').map((x) => x.args.join(' ')) ?? [];
    expect(runs.some((r) => /^npm ci\b/.test(r) && !r.includes('--omit=dev'))).toBe(true);
    expect(runs).toContain('npm run build');
    // The bundle leaves npm packages external (all but drizzle-orm), which is why the final stage installs them.
    expect(readText('apps/server/build.mjs')).toMatch(/external: true/);
  });

  it('installs production dependencies only, from the lockfile, in the final stage', () => {
    const runs = finalSteps('RUN').map((x) => x.args.join(' '));
    expect(runs.filter((r) => /\bnpm (ci|install|i)\b/.test(r))).toEqual([expect.stringMatching(/^npm ci --omit=dev\b/)]);
    const copies = finalSteps('COPY');
    // Only the bundle crosses from the build stage: its node_modules hold dev dependencies.
    for (const c of copies.filter((x) => x.flags.from)) {
      for (const src of c.args.slice(0, -1)) expect(src, 'copied from the build stage').toMatch(/\/dist\/?$/);
    }
    const fromContext = copies.filter((x) => !x.flags.from).flatMap((x) => x.args.slice(0, -1));
    expect(fromContext.sort()).toEqual(['package-lock.json', 'package.json']);
    expect(workdir(final as NonNullable<typeof final>)).toBe('/app');
  });

  it('runs as a numeric non-root user, with npm start, and no HEALTHCHECK', () => {
    const user = finalSteps('USER').at(-1)?.args[0] ?? 'root';
    const [uid, gid] = user.split(':');
    // Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    expect(uid).toMatch(/^\d+$/);
    expect(Number(uid)).toBeGreaterThan(0);
    if (gid !== undefined) expect(Number(gid)).toBeGreaterThan(0);
    expect(all('HEALTHCHECK')).toEqual([]);
    expect(finalSteps('ENTRYPOINT')).toEqual([]);
    const cmd = finalSteps('CMD').at(-1);
    expect(cmd?.json).toBe(true);
    expect(cmd?.args).toEqual(['npm', 'start']);
    // `exec`: npm's shell is replaced by node, so the SIGTERM npm forwards reaches Herald (with
    // `sh -c` in between, sh dies and node is orphaned without draining; image.test.ts proves it).
    // The heap flags bound memory by what Herald keeps rather than by the host's size (docs/performance.md,
    // "Memory"): a young generation of 2 × 16 MiB (Node 24 takes 2 × 32 MiB on a large host) and
    // a full collection once the old generation grew by half what survived the last one (instead
    // of up to 4×). node refuses to start on a flag it does not know, and NODE_OPTIONS refuses
    // --heap-growing-percent, so they live here, where the image's CMD runs them.
    expect(JSON.parse(readText('package.json')).scripts.start).toBe('exec node --max-semi-space-size=16 --heap-growing-percent=50 dist/apps/server/main.js');
  });

  it('keeps the build context small and free of local state', () => {
    const ignored = readText('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const entry of ['.git', '**/node_modules', 'dist', '.nx', '.env']) expect(ignored).toContain(entry);
  });
});
