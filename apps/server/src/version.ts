// The root package.json's version is Herald's only version number: the OpenAPI document, /healthz
// and herald_build_info read it here, so a release changes one line. esbuild inlines the value.
// eslint-disable-next-line @nx/enforce-module-boundaries -- the workspace's own manifest, not another project's code
import { version } from '../../../package.json';

export const HERALD_VERSION: string = version;
