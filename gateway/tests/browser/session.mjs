// Walks through authgate's browser sessions in Debian's Chromium: a protected page sends the
// browser to the sign-in page, signing in brings it back; after the test moves authgate's clock
// past idle_timeout the next page shows the sign-in page with the expiry notice; signing in again
// returns there; the sign-out button ends the session.
// Usage: node session.mjs BASE_URL USER PASSWORD SCREENSHOT.png
// Prints {"wait":"clock"} when the session should go idle and waits for a line on stdin (the
// test moves the clock, then answers). Ends with one JSON line of what it saw, by step.
// SCREENSHOT.png is the sign-in page with the expiry notice, at 480x640.
import readline from 'node:readline';
import { chromium } from 'playwright-core';

const [base, user, password, shot] = process.argv.slice(2);
const stdin = readline.createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();
// Never hang a test run: everything below has its own timeout, this is the backstop.
setTimeout(() => { console.error('session.mjs: overall timeout'); process.exit(3); }, 120000).unref();

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  timeout: 30000,
});
const out = {};
let code = 0;
try {
  const context = await browser.newContext({ viewport: { width: 480, height: 640 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);

  const signInPage = async () => ({
    path: new URL(page.url()).pathname,
    notice: (await page.locator('#notice').count()) ? (await page.locator('#notice').textContent()).trim() : null,
    returnTo: (await page.locator('form#signin input[name=return_to]').count())
      ? await page.locator('form#signin input[name=return_to]').inputValue() : null,
  });
  const text = () => page.evaluate(() => document.body.innerText.trim());
  const submit = async () => {
    await page.fill('#user', user);
    await page.fill('#password', password);
    await Promise.all([
      page.waitForURL((u) => !u.pathname.startsWith('/_authgate/')),
      page.click('form#signin button[type=submit]'),
    ]);
    return { url: page.url(), text: await text() };
  };
  const sessionCookie = async () => {
    const c = (await context.cookies()).find((c) => c.name === 'authgate_session');
    return c && { value: c.value, length: c.value.length, httpOnly: c.httpOnly, sameSite: c.sameSite, path: c.path };
  };

  let r = await page.goto(`${base}/app/page?x=1`);
  out.first = { status: r.status(), ...(await signInPage()) };
  out.signedIn = await submit();
  await page.goto(`${base}/app/other`);
  out.other = { url: page.url(), text: await text() };
  out.cookie = {
    ...(await sessionCookie()),
    inDocumentCookie: await page.evaluate(() => document.cookie.includes('authgate_session')),
  };

  console.log(JSON.stringify({ wait: 'clock' }));
  await lines.next();

  r = await page.goto(`${base}/app/third?y=2`);
  out.expired = { status: r.status(), ...(await signInPage()) };
  if (shot) await page.screenshot({ path: shot });
  out.again = await submit();
  out.cookieAgain = await sessionCookie();

  await page.goto(`${base}/_authgate/signout`);
  const [signedOut] = await Promise.all([
    page.waitForResponse((resp) => resp.url().endsWith('/_authgate/signout') && resp.request().method() === 'POST'),
    page.click('form#signout button[type=submit]'),
  ]);
  await page.waitForLoadState();
  out.signedOut = {
    status: signedOut.status(),
    text: await text(),
    sessionCookies: (await context.cookies()).filter((c) => c.name.includes('authgate_session')).length,
  };
  await page.goto(`${base}/app/page?x=1`);
  out.afterSignOut = await signInPage();
} catch (e) {
  console.error(e);
  code = 1;
} finally {
  stdin.close();
  await browser.close();
}
console.log(JSON.stringify(out));
process.exit(code);
