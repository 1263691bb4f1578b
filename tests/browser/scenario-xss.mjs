// User text is only text: payloads arrive as WhatsApp message bodies and
// sender names, as email subjects, bodies and sender names, and as an
// investor's company name. Every one must show as the same characters, no
// dialog may open, no error may be logged, and the DOM must hold no element
// they would have made. The page's CSP must be there and must refuse inline
// script even when something puts it in the DOM.
import { BASE, XSS, browser, page, step, login, inbound, noProblems, main, pageApi } from './lib.mjs';

await main(async () => {
  const ani = await page(await browser());

  await step('csp header on the page', [ani], async () => {
    const r = await ani.goto(BASE + '/');
    const csp = r.headers()['content-security-policy'] || '';
    for (const d of ["default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"]) {
      if (!csp.includes(d)) throw new Error('CSP lacks ' + d + ': ' + csp);
    }
    if (/unsafe-inline|unsafe-eval/.test(csp)) throw new Error('CSP allows inline or eval: ' + csp);
    if (r.headers()['x-content-type-options'] !== 'nosniff') throw new Error('no nosniff');
  });

  await step('payloads arrive on whatsapp', [ani], async () => {
    // a manager may act on every conversation, whoever holds it
    await login(ani, 'mgr@dpmptsp.example.go.id');
    for (const p of XSS) await inbound('6281300000003', p, p);
  });

  const injected = () => document.querySelectorAll(
    'img[src="x"], iframe, svg[onload], [onerror], [onload], script:not([src="/js/app.js"]), a[href^="javascript:"]').length;

  await step('list shows names as text', [ani], async () => {
    await ani.locator('.seg label', { hasText: /^Semua$/ }).click();
    for (const p of XSS) await ani.locator('.conv-item .name').filter({ hasText: p }).first().waitFor();
    if (await ani.evaluate(injected)) throw new Error('an element was injected into the list');
  });

  await step('whatsapp bodies show as text', [ani], async () => {
    await ani.locator('.conv-item', { has: ani.locator('.badge', { hasText: 'WA' }) }).filter({ hasText: XSS[0] }).locator('a').click();
    await ani.locator('.msg.in .body').nth(XSS.length - 1).waitFor();
    for (const p of XSS) {
      const n = await ani.locator('.msg.in .body').evaluateAll((els, want) => els.filter((e) => e.textContent === want).length, p);
      if (n !== 1) throw new Error(`body ${JSON.stringify(p)} shown ${n} times as text`);
    }
    await ani.locator('#investor dd').filter({ hasText: XSS[0] }).waitFor();
    if (await ani.evaluate(injected)) throw new Error('an element was injected into the conversation');
  });

  await step('email subjects and bodies show as text', [ani], async () => {
    for (const p of XSS.slice(0, 3)) {
      await ani.goto(BASE + '/#/inbox');
      await ani.locator('.conv-item', { has: ani.locator('.badge', { hasText: 'Email' }) }).filter({ hasText: p }).first().locator('a').click();
      await ani.locator('.msg.in .body').filter({ hasText: p }).first().waitFor();
      const subject = ani.locator('.msg.in .subject').first();
      await subject.waitFor();
      const s = await subject.textContent();
      if (!s.endsWith(p)) throw new Error('subject shown as ' + JSON.stringify(s));
      if (await ani.evaluate(injected)) throw new Error('an element was injected by an email');
    }
  });

  await step('a reply with a payload stays text', [ani], async () => {
    await ani.goto(BASE + '/#/inbox');
    await ani.locator('.conv-item', { has: ani.locator('.badge', { hasText: 'WA' }) }).filter({ hasText: XSS[0] }).locator('a').click();
    await ani.getByRole('textbox', { name: 'Balas' }).fill(XSS[0]);
    await ani.getByRole('button', { name: 'Kirim' }).click();
    await ani.locator('.msg.out .body').filter({ hasText: XSS[0] }).waitFor();
    if (await ani.evaluate(injected)) throw new Error('an element was injected by a reply');
  });

  await step('no script ran', [ani], async () => {
    noProblems(ani, 'the inbox with payloads');
    // and the CSP refuses inline script even if something puts it in the DOM
    ani.problems.length = 0;
    const ran = await ani.evaluate(() => {
      const s = document.createElement('script');
      s.textContent = 'window.__inline_ran = true';
      document.body.append(s);
      return window.__inline_ran === true;
    });
    if (ran) throw new Error('the CSP let an inline script run');
    if (!ani.problems.some((p) => /Content Security Policy/.test(p))) throw new Error('no CSP refusal seen: ' + ani.problems);
  });

  await step('csrf is enforced', [ani], async () => {
    const r = await ani.evaluate(async () => (await fetch('/api/v1/me/presence', { method: 'PUT',
      headers: { 'Content-Type': 'application/json' }, body: '{"presence":"away"}' })).status);
    if (r !== 403) throw new Error('a state change without the CSRF token got ' + r);
    const ok = await pageApi(ani, 'PUT', '/me/presence', { presence: 'online' });
    if (ok.status !== 200) throw new Error('with the token: ' + ok.status);
  });
});
