// lib.mjs: what every browser scenario shares: Debian's Chromium through
// playwright-core, pages that record dialogs, console errors and page
// errors, numbered steps with a screenshot each, and logging in.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const BASE = process.env.BASE_URL;
export const EMU = process.env.WA_EMU_URL;
export const ARTIFACTS = process.env.ARTIFACTS || path.join(import.meta.dirname, 'artifacts');
export const PASSWORD = process.env.PASSWORD;
export const XSS = JSON.parse(process.env.XSS || '[]');

const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

let stepNo = 0;
const contexts = [];

// A browser profile of its own (one per operator: separate cookies).
export async function browser(viewport = { width: 1366, height: 768 }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'linbat-pw-'));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: ARGS, viewport,
  });
  ctx.setDefaultTimeout(20000);
  contexts.push({ ctx, dir });
  return ctx;
}

// A page that remembers every dialog (and dismisses it), console error and page error.
export async function page(ctx) {
  const p = ctx.pages()[0] || await ctx.newPage();
  p.problems = [];
  p.on('dialog', (d) => { p.problems.push(`dialog ${d.type()}: ${d.message()}`); d.dismiss().catch(() => {}); });
  p.on('pageerror', (e) => p.problems.push('page error: ' + e.message));
  p.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of (401|404|409)/.test(m.text())) {
      p.problems.push('console error: ' + m.text());
    }
  });
  return p;
}

// Fail unless nothing was recorded on the page.
export function noProblems(p, what) {
  if (p.problems.length) throw new Error(`${what}: ${p.problems.join('; ')}`);
}

// Run one step: print ok or the error, and keep a screenshot of each page given.
export async function step(name, pages, fn) {
  stepNo += 1;
  try {
    await fn();
  } finally {
    for (const [i, p] of pages.entries()) {
      const file = path.join(ARTIFACTS, `${String(stepNo).padStart(2, '0')}-${name.replace(/[^a-z0-9]+/gi, '-')}${pages.length > 1 ? '-' + i : ''}.png`);
      await p.screenshot({ path: file, fullPage: false }).catch(() => {});
    }
  }
  console.log(`ok - ${name}`);
}

export async function login(p, email) {
  await p.goto(BASE + '/#/inbox');
  await p.getByLabel(/^(Email)$/).fill(email);
  await p.getByLabel(/^(Kata sandi|Password)$/).fill(PASSWORD);
  await p.getByRole('button', { name: /^(Masuk|Log in)$/ }).click();
  await p.locator('#top nav').waitFor();
}

// An inbound WhatsApp message, posted by wa-emu to linbatd as a signed webhook.
export async function inbound(from, name, text) {
  const r = await fetch(EMU + '/_emu/inbound', { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ from, name, text }) });
  const body = await r.json();
  if (r.status !== 200 || body.webhook_status !== 200) throw new Error('inbound webhook failed: ' + JSON.stringify(body));
  return body.id;
}

// An inbound WhatsApp image: the bytes registered with wa-emu, which linbatd then fetches.
export async function inboundImage(from, name, png, caption) {
  let r = await fetch(EMU + '/_emu/media', { method: 'POST', headers: { 'Content-Type': 'image/png' }, body: png });
  const media = await r.json();
  if (r.status !== 200) throw new Error('media registration failed: ' + JSON.stringify(media));
  r = await fetch(EMU + '/_emu/inbound', { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ from, name, media_id: media.id, caption, filename: 'ktp.png' }) });
  const body = await r.json();
  if (r.status !== 200 || body.webhook_status !== 200) throw new Error('inbound image failed: ' + JSON.stringify(body));
  return body.id;
}

// An API call with the page's own session (cookie and CSRF token).
export async function pageApi(p, method, url, body) {
  return p.evaluate(async ([m, u, b]) => {
    const r = await fetch('/api/v1' + u, { method: m, headers: { 'Content-Type': 'application/json',
      'X-CSRF-Token': sessionStorage.getItem('linbat.csrf') || '' }, body: b === undefined ? undefined : JSON.stringify(b) });
    return { status: r.status, body: await r.text() };
  }, [method, url, body]);
}

// Run the scenario; close every browser; exit 1 on failure.
export async function main(fn) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  let failed = false;
  try {
    await fn();
  } catch (e) {
    failed = true;
    console.log(`not ok - step ${stepNo}: ${e.stack || e}`);
  }
  for (const { ctx, dir } of contexts) {
    await ctx.close().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}
