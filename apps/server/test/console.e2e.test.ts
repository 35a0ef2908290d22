import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnection, type Connection, type RowDataPacket } from 'mysql2/promise';
import type { Locator, Page } from 'playwright-core';
import { ADMIN_TOKEN, asAdmin, asProducer, prepareBody } from './helpers';
import { startCheckEndpoint, startWebhookSink, waitFor } from '@herald/test-support';
import { SCREENSHOTS, signIn, startConsoleHarness } from './console-harness';

// The operator console in a real Chromium against a real Herald and MySQL, selected by role and
// accessible name as a screen reader would. Guards against: a console that cannot sign in, find
// or show a message, actions that do not reach MySQL, and actions missing from the audit log.

let h: Awaited<ReturnType<typeof startConsoleHarness>>;
let sql: Connection;
let checks: Awaited<ReturnType<typeof startCheckEndpoint>>;
let failing: Awaited<ReturnType<typeof startWebhookSink>>;
let ledgerSink: Awaited<ReturnType<typeof startWebhookSink>>;
let subscriptionId: string;
let page: Page;

const row = async (query: string, params: unknown[]) => ((await sql.query<RowDataPacket[]>(query, params))[0][0] ?? {}) as Record<string, unknown>;
const statusOf = async (id: string) => (await row('SELECT status FROM messages WHERE id = ?', [id])).status;
const lastAudit = () => row('SELECT actor, action, target_id, reason, outcome FROM audit_log ORDER BY id DESC LIMIT 1', []);
const shot = async (name: string, of: Page | Locator = page) => {
  if (SCREENSHOTS) await of.screenshot({ path: `${SCREENSHOTS}/${name}.png` });
};

beforeAll(async () => {
  h = await startConsoleHarness('console');
  sql = await createConnection(h.db.url);
  checks = await startCheckEndpoint(new Map());
  // Always 500 with a body, so attempts fail with a status code and a response excerpt.
  failing = await startWebhookSink((_hit, res) => void res.writeHead(500, { 'content-type': 'text/plain' }).end('coupon service down'));
  const created = await h.app.inject({
    method: 'POST', url: '/v1/subscriptions', headers: asAdmin,
    payload: { name: 'coupons', topic: 'order.paid', target: { type: 'webhook', url: failing.url() }, maxAttempts: 1 },
  });
  expect(created.statusCode).toBe(201);
  subscriptionId = created.json().id;
  const checkUrl = checks.url('/check');
  // Checked once (answer unknown), then held for a person: unresolved.
  await h.app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody('c-held', { topic: 'order.held', checkUrl, checkAfterMs: 0, maxChecks: 1, onChecksExhausted: 'hold' }) });
  // Checked once, next check far away: a stale prepared message.
  await h.app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody('c-stale', { checkUrl, checkAfterMs: 0, checkIntervalMs: 3_600_000 }) });
  // Published; its one attempt fails: dead delivery, failed message.
  await h.app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody('c-dead', { confirm: true }) });
  await waitFor(async () => (await statusOf('c-held')) === 'unresolved', 'c-held unresolved');
  await waitFor(async () => (await row('SELECT checks FROM messages WHERE id = ?', ['c-stale'])).checks === 1, 'c-stale checked once');
  await waitFor(async () => (await statusOf('c-dead')) === 'failed', 'c-dead failed');
  page = await h.newPage();
}, 120_000);

afterAll(async () => {
  await sql?.end();
  await checks?.close();
  await failing?.close();
  await ledgerSink?.close();
  await h?.close();
});

async function openMessage(id: string) {
  await page.getByRole('link', { name: 'Messages' }).click();
  await page.getByLabel('Search messages').fill(id);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.getByRole('link', { name: id, exact: true }).click();
  await page.getByRole('heading', { name: new RegExp(`^Message ${id}`) }).waitFor();
}

async function act(button: string, reason: string) {
  await page.getByLabel('Reason').fill(reason);
  await page.getByRole('button', { name: button, exact: true }).click();
  await page.getByRole('status').filter({ hasText: /confirmed|cancelled|requeued/ }).first().waitFor();
}

describe('the operator console, signed in as admin', () => {
  it('signs in with the token and shows the overview with the last hour', async () => {
    await signIn(page, ADMIN_TOKEN);
    await expect.poll(() => page.getByRole('img', { name: /Per minute over the last hour/ }).getAttribute('aria-label')).toMatch(/3 created/);
    // GET /v1/stats is not on this branch: the overview says so instead of failing.
    const counts = page.getByRole('region', { name: 'Counts' });
    await expect.poll(() => counts.textContent()).toMatch(/Stats not available|backlog/);
    // The token is held in sessionStorage only: never in a cookie or the URL.
    // (A string: this file is compiled without the DOM's types.)
    const held = (await page.evaluate("({ session: sessionStorage.getItem('herald.token'), local: localStorage.length, cookie: document.cookie, url: location.href })")) as { url: string };
    expect(held).toMatchObject({ session: ADMIN_TOKEN, local: 0, cookie: '' });
    expect(held.url).not.toContain(ADMIN_TOKEN);
    await shot('overview');
  });

  it('finds a message by id and shows its check-back calls with their answers', async () => {
    await openMessage('c-stale');
    const timeline = page.getByRole('list', { name: 'Timeline' });
    await expect.poll(() => timeline.textContent()).toContain('Check-back 1: unknown');
    expect(await timeline.textContent()).toContain('HTTP 200');
    await shot('message-search-result');
  });

  it('shows a delivery attempt with its status code, duration and response excerpt', async () => {
    await openMessage('c-dead');
    const timeline = page.getByRole('list', { name: 'Timeline' });
    await expect.poll(() => timeline.textContent()).toContain(`Delivery attempt 1 to ${subscriptionId}: failed`);
    expect(await timeline.textContent()).toMatch(/HTTP 500 · \d+ ms/);
    await timeline.getByText('Response excerpt').first().click();
    expect(await timeline.textContent()).toContain('coupon service down');
    await shot('message-timeline');
  });

  it('confirms an unresolved message with a reason: MySQL and the audit log agree', async () => {
    await openMessage('c-held');
    // No reason, no action.
    await page.getByRole('button', { name: 'Confirm', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: 'A reason is required' }).waitFor();
    expect(await statusOf('c-held')).toBe('unresolved');
    await act('Confirm', 'payment verified by hand');
    expect(['confirmed', 'delivered', 'failed']).toContain(await statusOf('c-held'));
    expect(await lastAudit()).toEqual({ actor: 'ops', action: 'message.confirm', target_id: 'c-held', reason: 'payment verified by hand', outcome: 'unresolved → confirmed' });
  });

  it('cancels a stale prepared message with a reason', async () => {
    await openMessage('c-stale');
    await act('Cancel', 'order abandoned');
    expect(await statusOf('c-stale')).toBe('cancelled');
    expect(await lastAudit()).toEqual({ actor: 'ops', action: 'message.cancel', target_id: 'c-stale', reason: 'order abandoned', outcome: 'prepared → cancelled' });
  });

  it('redelivers a failed message', async () => {
    await openMessage('c-dead');
    const before = Number((await row('SELECT generation FROM deliveries WHERE message_id = ?', ['c-dead'])).generation);
    await act('Redeliver', 'coupon service is back');
    expect(Number((await row('SELECT generation FROM deliveries WHERE message_id = ?', ['c-dead'])).generation)).toBe(before + 1);
    expect(await lastAudit()).toEqual({ actor: 'ops', action: 'message.redeliver', target_id: 'c-dead', reason: 'coupon service is back', outcome: 'requeued 1' });
    // The sink still answers 500: the replay dies again, which the bulk redeliver below needs.
    await waitFor(async () => (await statusOf('c-dead')) === 'failed', 'c-dead failed again');
  });

  it('shows subscription health, disables and enables, and rotates the secret', async () => {
    await page.getByRole('link', { name: 'Subscriptions' }).click();
    const card = page.getByRole('region', { name: 'coupons' });
    await expect.poll(() => card.textContent()).toMatch(/\d+ dead, failure rate 100\.0 %/);
    const lastError = (await row("SELECT last_error FROM deliveries WHERE message_id = 'c-dead'", [])).last_error;
    expect(await card.textContent()).toContain(String(lastError));
    await shot('subscriptions');

    await card.getByRole('button', { name: 'Disable' }).click();
    await card.getByRole('button', { name: 'Enable' }).waitFor();
    expect((await row('SELECT enabled FROM subscriptions WHERE id = ?', [subscriptionId])).enabled).toBe(0);
    expect(await lastAudit()).toMatchObject({ actor: 'ops', action: 'subscription.disable', target_id: subscriptionId, outcome: 'disabled' });
    await card.getByRole('button', { name: 'Enable' }).click();
    await card.getByRole('button', { name: 'Disable' }).waitFor();
    expect((await row('SELECT enabled FROM subscriptions WHERE id = ?', [subscriptionId])).enabled).toBe(1);
    expect(await lastAudit()).toMatchObject({ action: 'subscription.enable', outcome: 'enabled' });

    const secretBefore = (await row('SELECT secret FROM subscriptions WHERE id = ?', [subscriptionId])).secret;
    await card.getByRole('button', { name: 'Rotate secret' }).click();
    await card.getByRole('status').filter({ hasText: 'New secret' }).waitFor();
    const secretAfter = (await row('SELECT secret FROM subscriptions WHERE id = ?', [subscriptionId])).secret;
    expect(secretAfter).not.toBe(secretBefore);
    expect(await card.textContent()).toContain(String(secretAfter));
    expect(await lastAudit()).toMatchObject({ action: 'subscription.rotate_secret', target_id: subscriptionId });
  });

  it('counts a subscription’s dead deliveries before redelivering them in bulk', async () => {
    const card = page.getByRole('region', { name: 'coupons' });
    await card.getByText('Redeliver dead deliveries').click();
    await card.getByRole('button', { name: 'Count dead deliveries' }).click();
    await card.getByRole('status').filter({ hasText: '1 dead delivery in this range' }).waitFor();
    await card.getByLabel('Reason').fill('replay after the outage');
    await card.getByRole('button', { name: 'Redeliver', exact: true }).click();
    await card.getByRole('status').filter({ hasText: '1 delivery requeued' }).waitFor();
    expect(await lastAudit()).toMatchObject({ actor: 'ops', action: 'subscription.redeliver', target_id: subscriptionId, outcome: 'requeued 1' });
    expect(String((await lastAudit()).reason)).toMatch(/^replay after the outage \[…, …\)$/);
  });

  it('shows a blocked key of an ordered subscription and skips it with a reason: the next message of the key goes', async () => {
    // The ledger refuses k-first for good; k-second, same key, must wait behind it.
    ledgerSink = await startWebhookSink((hit, res) => void res.writeHead(hit.headers['webhook-id'] === 'k-first' ? 422 : 200).end());
    const created = await h.app.inject({
      method: 'POST', url: '/v1/subscriptions', headers: asAdmin,
      payload: { name: 'ledger', topic: 'ledger.entry', ordering: 'key', target: { type: 'webhook', url: ledgerSink.url() }, maxAttempts: 1 },
    });
    expect(created.statusCode, created.body).toBe(201);
    const ledgerId: string = created.json().id;
    for (const id of ['k-first', 'k-second']) {
      const res = await h.app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody(id, { topic: 'ledger.entry', key: 'acct-7', confirm: true }) });
      expect(res.statusCode, res.body).toBe(201);
    }
    await waitFor(async () => (await statusOf('k-first')) === 'failed', 'k-first dead');
    const second = () => row('SELECT d.status, d.next_attempt_at FROM deliveries d WHERE d.message_id = ? AND d.subscription_id = ?', ['k-second', ledgerId]);
    expect(await second()).toEqual({ status: 'pending', next_attempt_at: null });

    await openMessage('k-second');
    const timeline = page.getByRole('list', { name: 'Timeline' });
    await expect.poll(() => timeline.textContent()).toContain(`Waiting at ${ledgerId} for an earlier message of its key`);

    await page.getByRole('link', { name: 'Subscriptions' }).click();
    const card = page.getByRole('region', { name: 'ledger' });
    expect(await card.textContent()).toContain('per key');
    const blocked = card.getByRole('region', { name: 'Blocked keys' }).getByRole('row', { name: /acct-7/ });
    await blocked.getByRole('cell', { name: '1 waiting' }).waitFor();
    expect(await blocked.getByRole('link', { name: 'k-first' }).getAttribute('href')).toBe('#/messages/k-first?tenant=default');
    expect(await blocked.textContent()).toContain('endpoint answered HTTP 422');
    await shot('blocked-keys', card);

    // No reason, no skip.
    await blocked.getByRole('button', { name: 'Skip', exact: true }).click();
    await blocked.getByRole('alert').filter({ hasText: 'A reason is required to skip' }).waitFor();
    expect((await row('SELECT skipped_at FROM deliveries WHERE message_id = ? AND subscription_id = ?', ['k-first', ledgerId])).skipped_at).toBeNull();
    await blocked.getByLabel('Reason').fill('ledger rejects this entry for good');
    await blocked.getByRole('button', { name: 'Skip', exact: true }).click();
    await card.getByRole('status').filter({ hasText: 'Skipped message k-first of key acct-7' }).waitFor();
    await card.getByText('No key is blocked.').waitFor();

    const first = await row('SELECT d.status, d.skipped_at FROM deliveries d WHERE d.message_id = ? AND d.subscription_id = ?', ['k-first', ledgerId]);
    expect(first.status).toBe('dead');
    expect(first.skipped_at).toBeInstanceOf(Date);
    await waitFor(async () => (await statusOf('k-second')) === 'delivered', 'k-second delivered after the skip');
    expect(await lastAudit()).toEqual({ actor: 'ops', action: 'subscription.skip_key', target_id: ledgerId, reason: 'default/acct-7: ledger rejects this entry for good', outcome: expect.stringMatching(/^skipped delivery \d+, delivery \d+ due$/) });

    await openMessage('k-first');
    await expect.poll(() => timeline.textContent()).toContain(`Skipped at ${ledgerId}: later messages of its key went on`);
  });

  it('lists every action in the audit log, newest first, and the page only ever called Herald', async () => {
    await page.getByRole('link', { name: 'Audit log' }).click();
    const rows = page.getByRole('table').getByRole('row');
    await expect.poll(() => rows.count()).toBe(11); // header + 10 actions
    const actions = await page.getByRole('table').locator('tbody tr td:nth-child(3)').allTextContents();
    expect(actions).toEqual(['subscription.skip_key', 'subscription.create', 'subscription.redeliver', 'subscription.rotate_secret', 'subscription.enable', 'subscription.disable', 'message.redeliver', 'message.cancel', 'message.confirm', 'subscription.create']);
    await shot('audit-log');
    expect(h.requested.filter((url) => !url.startsWith(h.base))).toEqual([]);
  });
});
