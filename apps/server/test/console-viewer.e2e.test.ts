import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWebhookSink, waitFor } from '@herald/test-support';
import { API_KEYS, asAdmin, asProducer, prepareBody } from './helpers';
import { signIn, startConsoleHarness } from './console-harness';

// A viewer reads everything and may change nothing: the console offers it no action, and Herald
// refuses its writes whatever the console shows. Needs the viewer role (name:viewer:token).
const VIEWER_TOKEN = 'test-viewer-token-00000000000000';
const asViewer = { authorization: `Bearer ${VIEWER_TOKEN}` };
// A second tenant's producer (inline keys: the name is the tenant), holding the same id as the default tenant.
const TWIN_TOKEN = 'test-twin-tenant-token-000000000';
const asTwin = { authorization: `Bearer ${TWIN_TOKEN}` };

let h: Awaited<ReturnType<typeof startConsoleHarness>>;
let sink: Awaited<ReturnType<typeof startWebhookSink>>;
let orderedId: string;

beforeAll(async () => {
  h = await startConsoleHarness('viewer', { HERALD_API_KEYS: `${API_KEYS},watch:viewer:${VIEWER_TOKEN},team-b:producer:${TWIN_TOKEN}` });
  await h.app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody('v-held', { checkAfterMs: 0 }) });
  for (const [headers, owner] of [[asProducer, 'default'], [asTwin, 'team-b']] as const) {
    const res = await h.app.inject({ method: 'POST', url: '/v1/messages', headers, payload: prepareBody('v-twin', { key: 'twin-order', payload: { owner }, checkAfterMs: 600_000 }) });
    expect(res.statusCode, res.body).toBe(201);
  }
  // An ordered subscription with a blocked key: v-first dies, v-second waits behind it.
  sink = await startWebhookSink((hit, res) => void res.writeHead(hit.headers['webhook-id'] === 'v-first' ? 422 : 200).end());
  const created = await h.app.inject({
    method: 'POST', url: '/v1/subscriptions', headers: asAdmin,
    payload: { name: 'ledger', topic: 'ledger.entry', ordering: 'key', target: { type: 'webhook', url: sink.url() }, maxAttempts: 1 },
  });
  expect(created.statusCode, created.body).toBe(201);
  orderedId = created.json().id;
  for (const id of ['v-first', 'v-second']) {
    await h.app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody(id, { topic: 'ledger.entry', key: 'acct-9', confirm: true }) });
  }
  const blocked = async () => (await h.app.inject({ url: `/v1/subscriptions/${orderedId}/blocked-keys`, headers: asAdmin })).json().items;
  await waitFor(async () => (await blocked()).length === 1, 'acct-9 blocked');
}, 120_000);

afterAll(async () => {
  await h?.close();
  await sink?.close();
});

describe('the console signed in as a viewer', () => {
  it('shows the message and its timeline but offers no action button anywhere', async () => {
    const page = await h.newPage();
    await signIn(page, VIEWER_TOKEN);
    await page.getByRole('link', { name: 'Messages' }).click();
    await page.getByLabel('Search messages').fill('v-held');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.getByRole('link', { name: 'v-held', exact: true }).click();
    await page.getByRole('list', { name: 'Timeline' }).waitFor();
    for (const name of ['Confirm', 'Cancel', 'Redeliver', 'Enable', 'Disable', 'Rotate secret']) {
      expect(await page.getByRole('button', { name, exact: true }).count(), name).toBe(0);
    }
    await page.getByRole('link', { name: 'Subscriptions' }).click();
    await page.getByRole('heading', { name: 'Subscriptions' }).waitFor();
    // The blocked key is shown, with no way to skip it.
    const blocked = page.getByRole('region', { name: 'ledger' }).getByRole('region', { name: 'Blocked keys' });
    await blocked.getByRole('row', { name: /acct-9/ }).getByRole('cell', { name: '1 waiting' }).waitFor();
    expect(await blocked.getByRole('link', { name: 'v-first' }).count()).toBe(1);
    expect(await page.getByRole('button', { name: /Enable|Disable|Rotate secret|Redeliver|Skip/ }).count()).toBe(0);
    expect(await page.getByLabel('Reason').count()).toBe(0);
  });

  it('opens each tenant\'s message of an id two tenants hold from the search results, with its own payload', async () => {
    const page = await h.newPage();
    await signIn(page, VIEWER_TOKEN);
    for (const tenant of ['default', 'team-b']) {
      await page.getByRole('link', { name: 'Messages' }).click();
      await page.getByLabel('Search messages').fill('twin-order');
      await page.getByRole('button', { name: 'Search', exact: true }).click();
      await page.getByRole('row').filter({ hasText: tenant }).getByRole('link', { name: 'v-twin', exact: true }).click();
      await page.getByRole('heading', { name: /Message v-twin/ }).waitFor();
      // Without the tenant in the page's request Herald answers 409 and no payload is shown.
      expect(JSON.parse((await page.locator('details pre').textContent()) ?? 'null')).toEqual({ owner: tenant });
      expect(await page.locator('dl.fields dd').first().textContent()).toBe(tenant);
    }
  });

  it('is answered 403 on every write the console could make, and none is audited', async () => {
    const writes = [
      { method: 'POST', url: '/v1/messages/v-held/confirm', payload: { reason: 'x' } },
      { method: 'POST', url: '/v1/messages/v-held/cancel', payload: { reason: 'x' } },
      { method: 'POST', url: '/v1/messages/v-held/redeliver', payload: {} },
      { method: 'PATCH', url: '/v1/subscriptions/sub_0123456789abcdef0123', payload: { enabled: false } },
      { method: 'POST', url: '/v1/subscriptions/sub_0123456789abcdef0123/rotate-secret', payload: {} },
      { method: 'POST', url: '/v1/subscriptions/sub_0123456789abcdef0123/redeliver', payload: {} },
      { method: 'POST', url: `/v1/subscriptions/${orderedId}/blocked-keys/skip`, payload: { tenant: 'default', key: 'acct-9', reason: 'x' } },
    ] as const;
    for (const w of writes) expect((await h.app.inject({ ...w, headers: asViewer })).statusCode, `${w.method} ${w.url}`).toBe(403);
    const audit = await h.app.inject({ url: '/v1/audit', headers: asViewer });
    expect(audit.statusCode).toBe(200);
    // Only the admin's set-up above.
    expect(audit.json().items.map((e: { action: string }) => e.action)).toEqual(['subscription.create']);
    // The key is still blocked: the refused skip changed nothing.
    expect((await h.app.inject({ url: `/v1/subscriptions/${orderedId}/blocked-keys`, headers: asViewer })).json().items).toMatchObject([{ key: 'acct-9', messageId: 'v-first', waiting: 1 }]);
  });
});
