import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export const readText = (path: string): string => readFileSync(`${ROOT}/${path}`, 'utf8');

/**
 * Every environment variable Herald's config reads: the keys of the environment schema in
 * apps/server/src/config.schema.ts (the deploy project may not import the app, so its source is
 * read). A name in a manifest that is not here is a typo Herald would silently ignore.
 */
export function heraldEnvNames(): Set<string> {
  const source = readText('apps/server/src/config.schema.ts');
  const names = new Set<string>();
  for (const m of source.matchAll(/^ {4}([A-Z][A-Z0-9_]*): /gm)) names.add(m[1] as string);
  return names;
}

const KUBECTL = process.env.KUBECTL ?? '/usr/bin/kubectl';

/** Renders a Kustomize directory with kubectl and parses every document. */
export function renderKustomize(dir: string): Array<Record<string, unknown>> {
  const bin = existsSync(KUBECTL) ? KUBECTL : 'kubectl';
  let out: string;
  try {
    out = execFileSync(bin, ['kustomize', `${ROOT}/${dir}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') {
      throw new Error(`kubectl not found (looked for ${KUBECTL} and on PATH): install kubectl ≥ 1.27 (it embeds kustomize) or set KUBECTL; these manifests cannot be checked without it`);
    }
    throw new Error(`kubectl kustomize ${dir} failed:\n${e.stderr ?? e.message}`);
  }
  return parseAllDocuments(out).map((doc) => {
    if (doc.errors.length) throw new Error(`${dir}: ${doc.errors.map((x) => x.message).join('; ')}`);
    return doc.toJS() as Record<string, unknown>;
  });
}
