// Prints the configuration table from the environment schema (npm run config:doc);
// with --write it also rewrites docs/configuration.md around it.
import { writeFile } from 'node:fs/promises';
import { renderEnvTable } from '../src/config.schema';

const table = renderEnvTable();
console.log(table);
if (process.argv.includes('--write')) {
  const page = `# Configuration

Herald reads its configuration from environment variables once, at start-up. A wrong value stops
the process with exit code 78 and a message naming every wrong variable and what it accepts.
A blank variable counts as unset. Booleans take \`true\`/\`false\` (also \`1\`/\`0\`, \`yes\`/\`no\`);
durations are whole milliseconds.

This table is generated from the schema in \`apps/server/src/config.schema.ts\` by
\`npm run config:doc -- --write\`; edit the schema, not the table.

${table}
`;
  await writeFile(new URL('../../../docs/configuration.md', import.meta.url), page);
  console.error('wrote docs/configuration.md');
}
