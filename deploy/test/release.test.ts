import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { readText } from './workspace';

const RELEASE = (JSON.parse(readText('package.json')) as { version: string }).version;

describe('a release moves every version together', () => {
  it('the prod overlay pins the image of the version in package.json (a bumped version left the manifests on the old image)', () => {
    const kustomization = parse(readText('deploy/k8s/overlays/prod/kustomization.yaml')) as { images: Array<{ name: string; newTag: string }> };
    const herald = kustomization.images.find((i) => i.name === 'herald');
    // A digest may follow the tag (0.1.0@sha256:…); the tag itself is the release.
    expect(herald?.newTag.split('@')[0]).toBe(RELEASE);
  });

  it('the published client carries the same version and licence as Herald', () => {
    const root = JSON.parse(readText('package.json')) as { license?: string };
    const client = JSON.parse(readText('libs/client/package.json')) as { version: string; license?: string };
    expect(client.version).toBe(RELEASE);
    expect(root.license).toBe('Apache-2.0');
    expect(client.license).toBe('Apache-2.0');
    // npm packs a LICENSE from the package's own folder only, so the client keeps a copy.
    expect(readText('libs/client/LICENSE')).toBe(readText('LICENSE'));
  });
});
