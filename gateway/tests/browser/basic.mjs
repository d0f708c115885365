// A real browser meets authgate's Basic challenge.
// Usage: node basic.mjs URL [USER PASSWORD] [SCREENSHOT.png]
// Prints one JSON line: {"status": <main document status>, "url": ..., "title": ..., "text": ...}.
// Without USER/PASSWORD the browser gets the 401 and shows its body (what a user sees after
// cancelling the prompt). Chromium is Debian's; playwright-core never downloads a browser.
import { chromium } from 'playwright-core';

const [url, user, password, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  timeout: 30000,
});
try {
  const context = await browser.newContext(
    user ? { httpCredentials: { username: user, password: password ?? '' } } : {});
  const page = await context.newPage();
  const response = await page.goto(url, { timeout: 20000 });
  if (shot) await page.screenshot({ path: shot });
  console.log(JSON.stringify({
    status: response ? response.status() : 0,
    url: page.url(),
    title: await page.title(),
    text: (await page.textContent('body')) ?? '',
  }));
} finally {
  await browser.close();
}
