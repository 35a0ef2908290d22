import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { PRODUCER_TOKEN, asProducer, buildTestApp, createTestDatabase, prepareBody } from './helpers';

// Debian's chromium (installed by .ci/run), driven by playwright-core: no browser download.
const CHROMIUM = process.env.HERALD_TEST_CHROMIUM ?? '/usr/bin/chromium';

let app: FastifyInstance;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let browser: Browser;
let base: string;

beforeAll(async () => {
  db = await createTestDatabase('ui');
  app = await buildTestApp(db.url);
  base = await app.listen({ port: 0, host: '127.0.0.1' });
  await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody('ui-1') });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});
afterAll(async () => {
  await browser?.close();
  await app?.close();
  await db?.drop();
});

describe('Swagger UI in a browser', () => {
  it('shows every route, and a user can authorize and call the API from it', async () => {
    const page = await browser.newPage();
    await page.goto(`${base}/docs`);
    await expect.poll(() => page.locator('.information-container .title').textContent(), { timeout: 15_000 }).toContain('Herald');
    const paths = await page.locator('.opblock-summary-path').allTextContents();
    for (const path of ['/v1/messages', '/v1/messages/{id}', '/v1/messages/{id}/confirm', '/v1/messages/{id}/cancel', '/healthz', '/readyz', '/metrics']) {
      expect(paths.map((p) => p.replace(/\u200b/g, ''))).toContain(path);
    }

    await page.locator('button.authorize').first().click();
    await page.locator('.modal-ux input').first().fill(PRODUCER_TOKEN);
    await page.locator('.modal-ux button.authorize').click();
    await page.locator('.modal-ux button.btn-done').click();

    const op = page.locator('#operations-messages-getMessage');
    await op.locator('.opblock-summary').click();
    await op.locator('button.try-out__btn').click();
    await op.locator('input[placeholder="id"]').fill('ui-1');
    await op.locator('button.execute').click();
    await expect.poll(() => op.locator('.live-responses-table tbody .response-col_status').first().textContent(), { timeout: 15_000 }).toContain('200');
    expect(await op.locator('.live-responses-table .microlight').first().textContent()).toContain('"status": "prepared"');
    await page.screenshot({ path: 'tmp/swagger-ui.png', fullPage: false });
  });
});
