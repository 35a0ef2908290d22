// Writes openapi.yaml at the repository root from the service's own routes (npm run openapi).
import { writeFile } from 'node:fs/promises';
import { renderOpenApiYaml } from '../src/openapi';

await writeFile(new URL('../../../openapi.yaml', import.meta.url), await renderOpenApiYaml());
console.log('wrote openapi.yaml');
