// Opens authgate's admin dashboard in Debian's Chromium, checks that the chart rendered from
// real data, clicks the first "Unban" button and waits for the ban to disappear.
// Usage: node dashboard.mjs DASHBOARD_URL USER PASSWORD [SCREENSHOT.png]
// Prints one JSON line: {"rects", "reasons", "bansBefore", "bansAfter", "recent", "title"}.
import { chromium } from 'playwright-core';

const [url, user, password, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  timeout: 30000,
});
try {
  const context = await browser.newContext({
    httpCredentials: { username: user, password },
    viewport: { width: 1200, height: 1100 },
  });
  const page = await context.newPage();
  const response = await page.goto(url, { timeout: 20000 });
  if (!response || response.status() !== 200) throw new Error(`dashboard answered ${response && response.status()}`);
  await page.waitForSelector('#chart svg rect', { timeout: 10000 });
  const rects = await page.locator('#chart svg rect').count();
  const reasons = await page.locator('#legend span').allTextContents();
  const recent = await page.locator('#recent tr').count();
  const bansBefore = await page.locator('#bans button').count();
  if (shot) await page.screenshot({ path: shot, fullPage: true });
  let bansAfter = bansBefore;
  if (bansBefore > 0) {
    await page.locator('#bans button').first().click();
    await page.waitForFunction((n) => document.querySelectorAll('#bans button').length < n, bansBefore, { timeout: 10000 });
    bansAfter = await page.locator('#bans button').count();
  }
  console.log(JSON.stringify({ rects, reasons, bansBefore, bansAfter, recent, title: await page.title() }));
} finally {
  await browser.close();
}
