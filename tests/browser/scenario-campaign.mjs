// The manager's campaign: create a draft in the editor (with its own text
// preview), see the preview of who gets what, activate it, and watch the
// dashboard's funnel and timeline fill as the scheduler sends through
// wa-emu. Then the operators and reports pages.
import { browser, page, step, login, noProblems, main } from './lib.mjs';

const TEXT = 'Yth. {{company_name}} ({{nib}}), LKPM {{period}} paling lambat {{deadline}}.';

await main(async () => {
  const mgr = await page(await browser());

  await step('manager logs in', [mgr], async () => {
    await login(mgr, 'mgr@dpmptsp.example.go.id');
    await mgr.getByRole('link', { name: 'Kampanye' }).click();
    await mgr.locator('#campaigns').waitFor();
  });

  await step('manager writes a campaign', [mgr], async () => {
    await mgr.getByRole('link', { name: 'Kampanye baru' }).click();
    await mgr.getByLabel('Nama', { exact: true }).fill('Pengingat hari tenggat');
    await mgr.getByLabel('besar').check();
    await mgr.getByLabel(/^Hari relatif/).fill('0');
    await mgr.getByLabel('Mulai').fill('00:00');
    await mgr.getByLabel('Selesai').fill('23:59');
    await mgr.getByLabel('Teks (Indonesia)').fill(TEXT);
    await mgr.locator('.sample .bubble', { hasText: 'Yth. PT Contoh Makmur (1234567890123)' }).waitFor();
  });

  await step('manager saves and previews', [mgr], async () => {
    await mgr.getByRole('button', { name: 'Simpan' }).click();
    await mgr.locator('#campaign-status', { hasText: 'Draf' }).waitFor();
    const rows = mgr.locator('#preview-table tbody tr');
    await rows.filter({ hasText: 'PT Sulawesi Maju' }).waitFor();
    await rows.filter({ hasText: 'Yth. PT Dua Sejahtera (8100000000002)' }).waitFor();
    if (await rows.count() !== 3) throw new Error('preview rows: ' + await rows.count());
  });

  await step('manager activates', [mgr], async () => {
    await mgr.getByRole('button', { name: 'Aktifkan' }).click();
    await mgr.locator('#campaign-status', { hasText: 'Aktif' }).waitFor();
  });

  await step('dashboard shows the sends', [mgr], async () => {
    await mgr.getByRole('link', { name: 'Dasbor' }).click();
    await mgr.locator('#dashboard h1').waitFor();
    // refreshed by the live events of the sends; no reload
    await mgr.waitForFunction(() => {
      const td = document.querySelector('#funnel-table tr[data-channel="whatsapp"] td[data-stage="sent"]');
      return td && Number(td.textContent) === 3;
    }, null, { timeout: 60000 });
    const bars = await mgr.locator('svg.funnel rect[data-stage="sent"]').count();
    if (bars < 1) throw new Error('no funnel bar for the sends');
    noProblems(mgr, 'the dashboard');
  });

  await step('operators page', [mgr], async () => {
    await mgr.getByRole('link', { name: 'Operator' }).click();
    const ani = mgr.locator('#operators tr', { hasText: 'Ani' });
    await ani.waitFor();
    await ani.getByRole('spinbutton').fill('4');
    await ani.getByRole('button', { name: 'Simpan' }).click();
    await mgr.locator('#operators tr', { hasText: 'Ani' }).locator('.loadbar[aria-label="0/4"]').waitFor();
  });

  await step('manager adds a quick reply', [mgr], async () => {
    await mgr.getByRole('link', { name: 'Balasan cepat' }).click();
    await mgr.getByLabel('Pintasan').fill('salam');
    await mgr.getByLabel('Judul').fill('Salam pembuka');
    await mgr.getByLabel('Isi').fill('Selamat pagi, terima kasih telah menghubungi DPMPTSP.');
    await mgr.getByRole('button', { name: 'Tambah' }).click();
    await mgr.locator('#quick-replies tr', { hasText: '/salam' }).waitFor();
  });

  await step('reports page', [mgr], async () => {
    await mgr.getByRole('link', { name: 'Laporan' }).click();
    await mgr.locator('#report-response').waitFor();
    const href = await mgr.locator('#csv-response').getAttribute('href');
    if (!/^\/api\/v1\/reports\/response-times\.csv\?from=\d{4}-\d\d-\d\d&to=\d{4}-\d\d-\d\d$/.test(href)) {
      throw new Error('CSV link: ' + href);
    }
    noProblems(mgr, 'the manager pages');
  });
});
