// inbox-paint.mjs: the browser half of bench/inbox-paint. Logs in once, then
// per run loads a static one-line page (the reference) and the inbox (a
// reload: the tab keeps its CSRF token), and prints the Performance API
// figures as one JSON line: first contentful paint and the mark
// "inbox-list-rendered", in ms from the navigation's start.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.join(import.meta.dirname, '..', 'tests', 'browser', 'package.json'));
const { chromium } = require('playwright-core');
const BASE = process.env.BASE_URL;
const RUNS = Number(process.env.RUNS || 7);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inbox-paint-'));
const ctx = await chromium.launchPersistentContext(dir, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, viewport: { width: 1366, height: 768 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const page = ctx.pages()[0] || await ctx.newPage();
const fcp = () => page.evaluate(() => new Promise((resolve) => {
  const e = performance.getEntriesByName('first-contentful-paint')[0];
  if (e) return resolve(e.startTime);
  new PerformanceObserver((l) => resolve(l.getEntries()[0].startTime)).observe({ type: 'paint', buffered: true });
}));
try {
  await page.goto(BASE + '/#/inbox');
  await page.locator('#email').fill('mgr@bench.id');
  await page.locator('#password').fill(process.env.PASSWORD);
  await page.locator('form.login button[type=submit]').click();
  await page.locator('.conv-item').first().waitFor({ timeout: 30000 });
  const out = { list: [], fcp: [], blank: [], api: [], me: [] };
  for (let i = 0; i < RUNS; i++) {
    await page.goto(BASE + '/blank.html');
    out.blank.push(await fcp());
    await page.goto(BASE + '/#/inbox');
    await page.waitForFunction(() => performance.getEntriesByName('inbox-list-rendered').length > 0, null, { timeout: 30000 });
    out.list.push(await page.evaluate(() => performance.getEntriesByName('inbox-list-rendered')[0].startTime));
    out.fcp.push(await fcp());
    const rt = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => [e.name, e.duration]));
    out.api.push((rt.find(([n]) => n.includes('/api/v1/conversations?')) || [0, 0])[1]);
    out.me.push((rt.find(([n]) => n.endsWith('/api/v1/me')) || [0, 0])[1]);
    const n = await page.locator('.conv-item').count();
    if (n < 50) throw new Error('only ' + n + ' conversations listed');
  }
  console.log(JSON.stringify(out));
} finally {
  await ctx.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
