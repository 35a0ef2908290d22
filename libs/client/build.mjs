// Builds the publishable package into libs/client/dist: ESM bundles per entry point (esbuild) and
// declarations (the TypeScript compiler), with no import of any workspace package left in either.
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import ts from 'typescript';

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist');
rmSync(dist, { recursive: true, force: true });

await build({
  entryPoints: { index: 'src/index.ts', 'barrier/index': 'src/barrier/index.ts', 'consumer/index': 'src/consumer/index.ts' },
  absWorkingDir: root,
  outdir: dist,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // Everything imported is a Node built-in or a type; a package slipping in would be bundled, so refuse it.
  packages: 'external',
  logLevel: 'warning',
});

// Declarations: the client's own files only. Its request/response types are aliases of the
// contract's TypeBox schemas (Static<>); they are printed out in full here, so the package ships
// plain object types and depends on no workspace or schema package.
const config = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.build.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n')); } });
const program = ts.createProgram(config.fileNames, config.options);
const checker = program.getTypeChecker();
const own = (file) => file.startsWith(join(root, 'src'));
const problems = ts.getPreEmitDiagnostics(program).filter((d) => !d.file || own(d.file.fileName));
if (problems.length) throw new Error(ts.formatDiagnostics(problems, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => root, getNewLine: () => '\n' }));
const types = join(dist, 'types');
const written = new Map();
program.emit(undefined, (file, text) => {
  if (own(file.replace(join(dist, 'types', 'libs/client'), root))) written.set(file, text);
});
const typesFile = program.getSourceFile(join(root, 'src/types.ts'));
const expanded = ['// Generated from the contract\'s TypeBox schemas by build.mjs.'];
for (const statement of typesFile.statements) {
  const doc = ts.getJSDocCommentsAndTags(statement).map((d) => d.getText()).join('\n');
  if (ts.isTypeAliasDeclaration(statement)) {
    const type = checker.getTypeAtLocation(statement.name);
    const text = checker.typeToString(type, undefined, ts.TypeFormatFlags.NoTruncation | ts.TypeFormatFlags.InTypeAlias | ts.TypeFormatFlags.MultilineObjectLiterals);
    if (/Static<|typeof |import\(/.test(text)) throw new Error(`type ${statement.name.text} did not expand: ${text}`);
    expanded.push(doc, `export type ${statement.name.text} = ${text};`);
  } else if (ts.isInterfaceDeclaration(statement)) {
    expanded.push(doc, statement.getText());
  }
}
for (const [file, text] of written) {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, file.endsWith(`${join('src', 'types.d.ts')}`) ? `${expanded.join('\n')}\n` : text);
}
for (const file of walk(types)) {
  const text = readFileSync(file, 'utf8').replace(/(from\s+|import\()(['"])([^'"]+)\2/g, (all, lead, quote, spec) => {
    if (!spec.startsWith('.')) return all;
    const target = join(dirname(file), spec);
    const isDir = statSync(target, { throwIfNoEntry: false })?.isDirectory();
    return `${lead}${quote}${spec}${isDir ? '/index.js' : '.js'}${quote}`;
  });
  if (/@herald\/|@sinclair\//.test(text)) throw new Error(`${file} still refers to a workspace or schema package`);
  writeFileSync(file, text);
}
// Entry declarations where package.json points.
for (const entry of ['index', 'barrier/index', 'consumer/index']) {
  const target = join(types, 'libs/client/src', `${entry}.js`);
  const file = join(dist, `${entry}.d.ts`);
  writeFileSync(file, `export * from '${toRelative(file, target)}';\n`);
}

function toRelative(from, to) {
  const rel = relative(dirname(from), to);
  return rel.startsWith('.') ? rel : `./${rel}`;
}

function* walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* walk(path);
    else if (path.endsWith('.d.ts')) yield path;
  }
}
