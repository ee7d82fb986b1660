// Resume after reconnect in headless Chromium: the unmodified pusher-js web build with the
// ressonance-js browser bundle (clients/js/dist), through a loopback proxy the scenario cuts
// for 5 s while 100 events are published.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import { cfg, onCleanup, runScenario, serverSdk, sleep, startAuthServer, step, uid } from './lib/common.mjs';
import { startProxy } from './lib/proxy.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';
const webBuild = join(dirname(require.resolve('pusher-js/package.json')), 'dist/web/pusher.min.js');
const addOn = join(here, '../../../clients/js/dist/ressonance.browser.js');

runScenario(
  'recovery_browser',
  async (observed) => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found`);
    const sdk = serverSdk();
    const proxy = await startProxy([{ host: cfg.host, port: cfg.port }]);
    const js = 'text/javascript; charset=utf-8';
    const files = {
      '/': { type: 'text/html; charset=utf-8', body: readFileSync(join(here, 'web/recovery.html')) },
      '/pusher.min.js': { type: js, body: readFileSync(webBuild) },
      '/ressonance.browser.js': { type: js, body: readFileSync(addOn) },
    };
    const site = await startAuthServer(sdk, {
      route: (req, res, url) => {
        const file = files[url.pathname];
        if (!file) return false;
        res.writeHead(200, { 'Content-Type': file.type, 'Cache-Control': 'no-store' });
        res.end(file.body);
        return true;
      },
    });
    const name = `chat-${uid()}`;
    observed.page_errors = [];
    let next = 0;
    const publish = async (count) => {
      for (let i = 0; i < count; i += 1) {
        await sdk.trigger(name, 'message', { n: next });
        next += 1;
      }
    };

    step('launch chromium');
    const profile = mkdtempSync(join(tmpdir(), 'ressonance-e2e-chromium-'));
    onCleanup(() => rmSync(profile, { recursive: true, force: true }));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-sync'],
      timeout: 15000,
    });
    onCleanup(() => context.close());
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (err) => observed.page_errors.push(String(err)));
    const snapshot = () => page.evaluate(() => window.__e2e);
    const until = async (predicate, arg, label, timeout = 15000) => {
      try {
        await page.waitForFunction(predicate, arg, { timeout, polling: 50 });
      } catch (err) {
        observed.page = await snapshot();
        throw new Error(`${label}: ${err.message.split('\n')[0]}`);
      }
    };

    step('open the page through the proxy');
    const query = new URLSearchParams({
      host: cfg.host,
      port: String(proxy.port),
      key: cfg.key,
      channel: name,
    });
    await page.goto(`${site.base}/?${query}`, { waitUntil: 'load', timeout: 10000 });
    await until(() => window.__e2e.subscribed, null, 'the subscription');
    await publish(5);
    await until(() => window.__e2e.received.length >= 5, null, 'the first events');

    step('cut for 5 s while 100 events are published');
    proxy.cut();
    await until(() => window.__e2e.states.at(-1) !== 'connected', null, 'the cut to be seen');
    const started = Date.now();
    await publish(100);
    await sleep(Math.max(0, 5000 - (Date.now() - started)));
    proxy.restore();

    step('the missed events, then live ones');
    await until(() => window.__e2e.received.length >= 105, null, 'the missed events', 20000);
    await publish(5);
    await until(() => window.__e2e.received.length >= 110, null, 'the live events');
    observed.page = await snapshot();
  },
  { timeoutMs: cfg.timeoutMs ?? 60000 },
);
