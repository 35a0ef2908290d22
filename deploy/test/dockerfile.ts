import { DockerfileParser, type Instruction } from 'dockerfile-ast';
import { readText } from './workspace';

export interface Step {
  keyword: string;
  /** Arguments after the flags, as written (shell form) or as the JSON array's strings. */
  args: string[];
  flags: Record<string, string>;
  /** Whether CMD/ENTRYPOINT/RUN used the JSON (exec) form. */
  json: boolean;
}

export interface Stage {
  image: string;
  name: string | undefined;
  steps: Step[];
}

function step(instruction: Instruction): Step {
  const withFlags = instruction as Instruction & { getFlags?: () => Array<{ getName(): string; getValue(): string | null }> };
  const withJson = instruction as Instruction & { getJSONStrings?: () => Array<{ getJSONValue(): string }> };
  const json = withJson.getJSONStrings?.().map((s) => s.getJSONValue()) ?? [];
  const flags = Object.fromEntries((withFlags.getFlags?.() ?? []).map((f) => [f.getName(), f.getValue() ?? '']));
  return {
    keyword: instruction.getKeyword().toUpperCase(),
    args: json.length ? json : instruction.getArguments().map((a) => a.getValue()),
    flags,
    json: json.length > 0,
  };
}

/** The repository's Dockerfile, parsed by dockerfile-ast into stages and their steps. */
export function dockerStages(path = 'Dockerfile'): Stage[] {
  const stages: Stage[] = [];
  for (const instruction of DockerfileParser.parse(readText(path)).getInstructions()) {
    const s = step(instruction);
    if (s.keyword === 'FROM') {
      const [image = '', as, name] = s.args;
      stages.push({ image, name: as?.toUpperCase() === 'AS' ? name : undefined, steps: [] });
    } else if (stages.length === 0) {
      if (s.keyword !== 'ARG') throw new Error(`${path}: ${s.keyword} before the first FROM`);
    } else {
      stages.at(-1)?.steps.push(s);
    }
  }
  return stages;
}

/** The last WORKDIR of a stage (absolute paths only, which is what Herald's Dockerfile uses). */
export function workdir(stage: Stage): string {
  const dir = stage.steps.filter((s) => s.keyword === 'WORKDIR').at(-1)?.args[0];
  if (!dir?.startsWith('/')) throw new Error(`stage ${stage.name}: expected an absolute WORKDIR`);
  return dir;
}
