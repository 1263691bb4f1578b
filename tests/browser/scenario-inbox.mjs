// The operator's day: Ani logs in and goes online; a WhatsApp message
// arrives live (wa-emu's signed webhook) and is hers; she replies and sees
// the delivered mark; a second investor writes while she is full, so the
// conversation waits in the queue, which Budi (logged in beside her) sees
// live; Ani resolves, the queue moves to her, and Budi sees it leave.
import { browser, page, step, login, inbound, inboundImage, noProblems, main } from './lib.mjs';

// A 2x2 PNG, red.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEElEQVR4nGP4z8AARAwQCgAf7gP9i18U1AAAAABJRU5ErkJggg==', 'base64');

await main(async () => {
  const ani = await page(await browser());
  const budi = await page(await browser());

  await step('ani logs in', [ani], async () => {
    await login(ani, 'ani@dpmptsp.example.go.id');
    await ani.locator('#presence').selectOption('online');
    await ani.locator('#live:not(.off)').waitFor();
    await ani.locator('.seg label', { hasText: /^Semua$/ }).click();
  });

  await step('budi logs in', [budi], async () => {
    await login(budi, 'budi@dpmptsp.example.go.id');
    await budi.locator('#live:not(.off)').waitFor();
  });

  await step('a whatsapp message arrives live', [ani], async () => {
    await inbound('6281300000001', 'Sari', 'Selamat pagi, kapan batas LKPM triwulan ini?');
    const item = ani.locator('.conv-item', { hasText: 'PT Sulawesi Maju' });
    await item.waitFor();
    await item.locator('.badge', { hasText: 'WA' }).waitFor();
    await item.locator('.assignee', { hasText: 'Ani' }).waitFor();
    await item.locator('a').click();
    await ani.locator('.msg.in .body', { hasText: 'kapan batas LKPM' }).waitFor();
    await ani.locator('#investor dd', { hasText: '8100000000001' }).waitFor();
  });

  await step('ani replies and sees the delivered mark', [ani], async () => {
    await ani.getByRole('textbox', { name: 'Balas' }).fill('Selamat pagi, batasnya tanggal 15 bulan depan.');
    await ani.getByRole('button', { name: 'Kirim' }).click();
    const out = ani.locator('.msg.out', { hasText: 'batasnya tanggal 15' });
    await out.waitFor();
    // read beats delivered: either shows that the message was delivered
    await ani.locator('.msg.out[data-status="delivered"], .msg.out[data-status="read"]', { hasText: 'batasnya tanggal 15' }).waitFor();
    await out.locator('.mark-text', { hasText: /^(Sampai|Dibaca)$/ }).waitFor();
  });

  await step('an image arrives and is previewed', [ani], async () => {
    await inboundImage('6281300000001', 'Sari', PNG, 'Foto KTP saya');
    const att = ani.locator('.msg.in .att').filter({ has: ani.locator('img') });
    await att.waitFor();
    await ani.waitForFunction(() => {
      const img = document.querySelector('.msg.in .att img');
      return img && img.complete && img.naturalWidth === 2;
    });
    const href = await att.locator('a[download]').getAttribute('href');
    if (!/^\/api\/v1\/media\/\d+$/.test(href)) throw new Error('download link: ' + href);
  });

  await step('ani marks a period filed', [ani], async () => {
    const row = ani.locator('#investor table.filings tbody tr').first();
    const period = await row.getAttribute('data-period');
    await row.getByRole('button', { name: 'Tandai sudah lapor' }).click();
    await ani.locator(`#investor tr[data-period="${period}"] td.filed`).waitFor();
  });

  await step('an internal note', [ani], async () => {
    await ani.locator('.modes label', { hasText: 'Catatan internal' }).click();
    await ani.getByRole('textbox', { name: 'Catatan internal' }).fill('Investor besar, cek KBLI.');
    await ani.getByRole('button', { name: 'Simpan catatan' }).click();
    await ani.locator('.msg.note', { hasText: 'cek KBLI' }).waitFor();
  });

  await step('a second investor waits in the queue', [ani, budi], async () => {
    await inbound('6281300000002', 'Dodi', 'Halo, NIB kami sudah aktif?');
    for (const p of [budi, ani]) {
      const item = p.locator('.conv-item', { hasText: 'PT Dua Sejahtera' });
      await item.waitFor();
      await item.locator('.assignee', { hasText: 'antrean' }).waitFor();
      await item.locator('.wait').waitFor();
    }
  });

  await step('resolved', [ani], async () => {
    await ani.getByRole('button', { name: 'Selesaikan' }).click();
    await ani.locator('#conv-status', { hasText: 'Selesai' }).waitFor();
  });

  await step('queue moved', [ani, budi], async () => {
    // the waiting conversation went to Ani as soon as she was free
    await ani.locator('.conv-item', { hasText: 'PT Dua Sejahtera' }).locator('.assignee', { hasText: 'Ani' }).waitFor();
    // and left the queue Budi sees
    await budi.locator('.conv-item', { hasText: 'PT Dua Sejahtera' }).waitFor({ state: 'detached' });
    noProblems(ani, 'Ani\'s page');
    noProblems(budi, 'Budi\'s page');
  });

  await step('english is one click away', [ani], async () => {
    await ani.locator('#lang').click();
    await ani.getByRole('link', { name: 'Inbox' }).waitFor();
    await ani.locator('#lang').click();
    await ani.getByRole('link', { name: 'Kotak masuk' }).waitFor();
  });

  await step('phone width', [ani], async () => {
    await ani.setViewportSize({ width: 390, height: 844 });
    await ani.goto(ani.url().replace(/#.*/, '#/inbox'));
    await ani.locator('.conv-item').first().waitFor();
    const w = await ani.evaluate(() => document.documentElement.scrollWidth);
    if (w > 390) throw new Error('the inbox is wider than a phone: ' + w);
    await ani.locator('.conv-item a').first().click();
    await ani.locator('#reply-text').waitFor();
    if (await ani.locator('#conv-list').isVisible()) throw new Error('list and conversation both shown at phone width');
  });
});
