// A real browser meets authgate's Basic challenge.
// Usage: node basic.mjs URL USER PASSWORD [SCREENSHOT.png]
// Prints one JSON line: {"status", "url", "title", "text", "challenges": [...]}.
// The browser is driven over CDP: every auth challenge it meets is recorded; with an empty
// USER it cancels the prompt (what a person does by pressing Cancel, after which Chromium
// shows the 401 body), otherwise it answers with USER/PASSWORD.
// Chromium is Debian's; playwright-core never downloads a browser.
import { chromium } from 'playwright-core';

const [url, user, password, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  timeout: 30000,
});
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  const challenges = [];
  let answered = 0;
  cdp.on('Fetch.requestPaused', (e) => cdp.send('Fetch.continueRequest', { requestId: e.requestId }).catch(() => {}));
  cdp.on('Fetch.authRequired', (e) => {
    challenges.push(e.authChallenge);
    // Answer once; a second challenge for the same navigation means the answer was refused.
    const give = user && answered++ === 0;
    cdp.send('Fetch.continueWithAuth', {
      requestId: e.requestId,
      authChallengeResponse: give
        ? { response: 'ProvideCredentials', username: user, password: password ?? '' }
        : { response: 'CancelAuth' },
    }).catch(() => {});
  });
  await cdp.send('Fetch.enable', { handleAuthRequests: true, patterns: [{ urlPattern: '*' }] });
  const response = await page.goto(url, { timeout: 20000 });
  if (shot) await page.screenshot({ path: shot });
  console.log(JSON.stringify({
    status: response ? response.status() : 0,
    url: page.url(),
    title: await page.title(),
    text: (await page.textContent('body')) ?? '',
    challenges,
  }));
} finally {
  await browser.close();
}
