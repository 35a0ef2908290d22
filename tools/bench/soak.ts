/**
 * The soak's purger comparison (--purger-windows): Herald runs with retention off, and Herald's
 * purger runs in a process of its own (soak-purger.ts) that the soak switches off and on in
 * alternating windows of the same run, so a busy shared machine disturbs both phases alike.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { readCpuMs } from './herald.process';
import type { Operation } from './load.generator';
import { summarize, type LatencySummary } from './stats';

export interface ComparisonOptions {
  databaseUrl: string;
  retentionMs: number;
  intervalMs: number;
  /** The purger's cap, messages per second (0: none). */
  maxPerSecond: number;
  /** Further PurgerOptions for the purger (batchSize, paceFactor, …). */
  purgerOptions?: Record<string, unknown>;
  windowS: number;
  /** Herald's CPU time so far (all its processes), in ms. */
  heraldCpuMs: () => number | undefined;
}

type Phase = 'off' | 'on';

interface Window {
  phase: Phase;
  fromS: number;
  toS: number;
  latencies: number[];
  errors: number;
  purged: number;
  /** An "on" window's first run, which removes what the "off" window before it left (a backlog). */
  catchUp?: { messages: number; seconds: number };
  heraldCpuMs: number | null;
}

export interface PhaseFigures {
  windows: number;
  seconds: number;
  pairsPerSec: number;
  errors: number;
  /** prepare+confirm, from the prepare's start to the confirm's 200, in ms. */
  latency: LatencySummary;
  heraldCpuMsPerPair: number | null;
  messagesPurged: number;
}

export interface ComparisonResult {
  windowS: number;
  retentionMs: number;
  intervalMs: number;
  maxPerSecond: number;
  purgerOptions: Record<string, unknown>;
  /** Windows that began before the first message could be purged (at the retention), or ran less than half their length, are left out. */
  comparedFromS: number;
  off: PhaseFigures;
  on: PhaseFigures;
  /** CPU time of the purger's process during the load, ms (it would be on Herald's event loop in an `all` process). */
  purgerCpuMs: number | null;
  /** Over the compared "on" windows' first runs (each a backlog of one "off" window): the median messages per second. */
  catchUpPerSec: number | null;
  /** Medians over each "on" window of its figure ÷ the mean of its "off" neighbours (1 = no difference). */
  pairedRatio: { p99: number | null; pairsPerSec: number | null };
  windows: Array<Omit<Window, 'latencies'> & { pairs: number; p50: number | null; p95: number | null; p99: number | null }>;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? null : Math.round((sorted[Math.floor((sorted.length - 1) / 2)] ?? 0) * 1000) / 1000;
};

/** Forks the purger process and returns what drives it; `begin()` when the load starts. */
export async function startPurgerComparison(options: ComparisonOptions) {
  const windows: Window[] = [];
  let current: Window | undefined;
  let startedAt = 0;
  let timer: NodeJS.Timeout | undefined;
  let cpuAtWindowStart: number | undefined;
  let purgerCpuAtStart: number | undefined;
  const file = fileURLToPath(new URL('./soak-purger.ts', import.meta.url));
  const child: ChildProcess = fork(file, [JSON.stringify({ url: options.databaseUrl, retentionMs: options.retentionMs, intervalMs: options.intervalMs, maxPerSecond: options.maxPerSecond, options: options.purgerOptions ?? {} })], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const killChild = () => child.kill('SIGKILL');
  process.once('exit', killChild);
  let purgedTotal = 0;
  const acks: Array<() => void> = [];
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the soak's purger process exited with ${code}`)));
    child.on('message', (m: { ready?: boolean; purged?: number; ack?: string; catchUp?: { messages: number; ms: number } }) => {
      if (m.ready) resolve();
      if (m.catchUp && current?.phase === 'on') current.catchUp = { messages: m.catchUp.messages, seconds: Math.round(m.catchUp.ms) / 1000 };
      if (m.purged) {
        purgedTotal += m.purged;
        if (current) current.purged += m.purged;
      }
      if (m.ack) acks.shift()?.();
    });
  });
  const command = (what: 'on' | 'off') =>
    new Promise<void>((resolve) => {
      acks.push(resolve);
      child.send(what);
    });


  const closeWindow = (at: number) => {
    if (!current) return;
    current.toS = (at - startedAt) / 1000;
    const cpu = options.heraldCpuMs();
    current.heraldCpuMs = cpu === undefined || cpuAtWindowStart === undefined ? null : cpu - cpuAtWindowStart;
    windows.push(current);
  };
  const openWindow = async (phase: Phase) => {
    const at = performance.now();
    closeWindow(at);
    cpuAtWindowStart = options.heraldCpuMs();
    current = { phase, fromS: (at - startedAt) / 1000, toS: 0, latencies: [], errors: 0, purged: 0, heraldCpuMs: null };
    await command(phase);
  };

  const phaseFigures = (list: Window[]): PhaseFigures => {
    const seconds = list.reduce((s, w) => s + (w.toS - w.fromS), 0);
    const pairs = list.reduce((s, w) => s + w.latencies.length, 0);
    const cpu = list.every((w) => w.heraldCpuMs !== null) ? list.reduce((s, w) => s + (w.heraldCpuMs ?? 0), 0) : null;
    return {
      windows: list.length,
      seconds: Math.round(seconds),
      pairsPerSec: seconds > 0 ? Math.round((pairs / seconds) * 10) / 10 : 0,
      errors: list.reduce((s, w) => s + w.errors, 0),
      latency: summarize(list.flatMap((w) => w.latencies)),
      heraldCpuMsPerPair: cpu === null || pairs === 0 ? null : Math.round((cpu / pairs) * 100) / 100,
      messagesPurged: list.reduce((s, w) => s + w.purged, 0),
    };
  };

  return {
    purgedMessages: () => purgedTotal,

    /** Each pair counts in the window it started in, whichever phase it ends in. */
    wrap:
      (op: Operation): Operation =>
      async (seq) => {
        const w = current;
        const t0 = performance.now();
        try {
          await op(seq);
          w?.latencies.push(performance.now() - t0);
        } catch (err) {
          if (w) w.errors++;
          throw err;
        }
      },

    async begin(): Promise<void> {
      startedAt = performance.now();
      // From here on: its start-up (tsx compiling it) is not the purge's cost.
      purgerCpuAtStart = child.pid === undefined ? undefined : readCpuMs(child.pid);
      let phase: Phase = 'off';
      await openWindow(phase);
      timer = setInterval(() => {
        phase = phase === 'off' ? 'on' : 'off';
        void openWindow(phase);
      }, options.windowS * 1000);
    },

    async finish(): Promise<ComparisonResult> {
      clearInterval(timer);
      closeWindow(performance.now());
      current = undefined;
      await command('off');
      const purgerCpuNow = child.pid === undefined ? undefined : readCpuMs(child.pid);
      const purgerCpuMs = purgerCpuNow === undefined || purgerCpuAtStart === undefined ? null : purgerCpuNow - purgerCpuAtStart;
      await new Promise((resolve) => {
        child.once('exit', resolve);
        child.send('exit');
      });
      process.off('exit', killChild);
      const comparedFromS = options.retentionMs / 1000;
      // A window cut short by the end of the load (a timer firing as it stops) says nothing.
      const compared = windows.filter((w) => w.fromS >= comparedFromS - 0.5 && w.toS - w.fromS >= options.windowS / 2);
      const p99 = (w: Window) => summarize(w.latencies).p99;
      const perSec = (w: Window) => w.latencies.length / Math.max(0.001, w.toS - w.fromS);
      const ratios = (figure: (w: Window) => number | null) =>
        compared.flatMap((w, i) => {
          if (w.phase !== 'on') return [];
          const neighbours = [compared[i - 1], compared[i + 1]].filter((n): n is Window => n?.phase === 'off').map(figure).filter((v): v is number => v !== null && v > 0);
          const own = figure(w);
          return own === null || neighbours.length === 0 ? [] : [own / (neighbours.reduce((a, b) => a + b, 0) / neighbours.length)];
        });
      return {
        windowS: options.windowS,
        retentionMs: options.retentionMs,
        intervalMs: options.intervalMs,
        maxPerSecond: options.maxPerSecond,
        purgerOptions: options.purgerOptions ?? {},
        comparedFromS,
        off: phaseFigures(compared.filter((w) => w.phase === 'off')),
        on: phaseFigures(compared.filter((w) => w.phase === 'on')),
        pairedRatio: { p99: median(ratios(p99)), pairsPerSec: median(ratios(perSec)) },
        catchUpPerSec: median(compared.flatMap((w) => (w.catchUp && w.catchUp.seconds > 0 && w.catchUp.messages > 0 ? [Math.round(w.catchUp.messages / w.catchUp.seconds)] : []))),
        purgerCpuMs,
        windows: windows.map(({ latencies, ...w }) => {
          const { p50, p95, p99 } = summarize(latencies);
          return { ...w, fromS: Math.round(w.fromS), toS: Math.round(w.toS), pairs: latencies.length, p50, p95, p99 };
        }),
      };
    },
  };
}

/** One line per phase for the log. */
export function describeComparison(c: ComparisonResult): string {
  const line = (name: string, f: PhaseFigures) =>
    `  purger ${name}: ${f.windows} windows, ${f.pairsPerSec} pairs/s, ${f.errors} errors, prepare+confirm p50/p95/p99 ${f.latency.p50}/${f.latency.p95}/${f.latency.p99} ms, Herald CPU ${f.heraldCpuMsPerPair} ms/pair, ${f.messagesPurged} messages purged`;
  return [line('off', c.off), line('on', c.on), `  median on/off ratio per window: p99 ${c.pairedRatio.p99}, pairs/s ${c.pairedRatio.pairsPerSec}; purger process CPU ${c.purgerCpuMs} ms for ${c.on.messagesPurged + c.off.messagesPurged} messages; first run of an "on" window (the backlog) at a median ${c.catchUpPerSec} messages/s`].join('\n');
}
