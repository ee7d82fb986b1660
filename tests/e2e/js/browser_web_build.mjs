// The pusher-js WEB build (dist/web/pusher.min.js) in headless Debian Chromium,
// driven by playwright-core (no downloaded browsers). A local node server on
// 127.0.0.1 serves the page, the web build and the channel auth endpoint; the
// npm `pusher` SDK triggers events through the HTTP API.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import {
  cfg,
  onCleanup,
  runScenario,
  serverSdk,
  startAuthServer,
  step,
  trigger,
  uid,
} from './lib/common.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';
const webBuild = join(dirname(require.resolve('pusher-js/package.json')), 'dist/web/pusher.min.js');

runScenario(
  'browser_web_build',
  async (observed) => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} not found: install it with \`apt-get install -y chromium\``);
    }
    const sdk = serverSdk();
    const files = {
      '/': { type: 'text/html; charset=utf-8', body: readFileSync(join(here, 'web/index.html')) },
      '/pusher.min.js': { type: 'text/javascript; charset=utf-8', body: readFileSync(webBuild) },
    };
    const auth = await startAuthServer(sdk, {
      route: (req, res, url) => {
        const file = req.method === 'GET' ? files[url.pathname] : undefined;
        if (req.method === 'GET' && !file) {
          res.writeHead(404).end();
          return true;
        }
        if (!file) return false;
        res.writeHead(200, { 'Content-Type': file.type, 'Cache-Control': 'no-store' });
        res.end(file.body);
        return true;
      },
    });
    const suffix = uid();
    const names = { public: `news-${suffix}`, private: `private-inbox-${suffix}` };
    observed.names = names;
    observed.auth_requests = auth.requests;
    observed.requests = [];
    observed.foreign_requests = [];
    observed.websockets = [];
    observed.console = [];
    observed.page_errors = [];

    step('launch chromium');
    const profile = mkdtempSync(join(tmpdir(), 'ressonance-e2e-chromium-'));
    onCleanup(() => rmSync(profile, { recursive: true, force: true }));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      timeout: 15000,
    });
    onCleanup(() => context.close());
    observed.browser_version = context.browser()?.version() ?? null;
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('request', (request) => {
      const url = request.url();
      observed.requests.push(url);
      if (!/^(https?|wss?):\/\/127\.0\.0\.1[:/]/.test(url)) observed.foreign_requests.push(url);
    });
    page.on('websocket', (ws) => observed.websockets.push(ws.url()));
    page.on('console', (msg) => observed.console.push(`${msg.type()}: ${msg.text()}`));
    page.on('pageerror', (err) => observed.page_errors.push(String(err)));

    step('open the page; it connects and subscribes');
    const query = new URLSearchParams({
      host: cfg.host,
      port: String(cfg.port),
      key: cfg.key,
      public: names.public,
      private: names.private,
    });
    await page.goto(`${auth.base}/?${query}`, { waitUntil: 'load', timeout: 10000 });
    const snapshot = () => page.evaluate(() => window.__e2e);
    try {
      await page.waitForFunction(
        (n) =>
          window.__e2e && window.__e2e.subscribed[n.public] && window.__e2e.subscribed[n.private],
        names,
        { timeout: 10000, polling: 50 },
      );
    } catch (err) {
      observed.page = await snapshot();
      throw new Error(`the page did not subscribe to both channels: ${err.message.split('\n')[0]}`);
    }

    step('npm SDK triggers on both channels');
    await trigger(sdk, names.public, 'headline', { title: 'Hello from the HTTP API ✓' });
    await trigger(sdk, names.private, 'direct-message', { from: 'server', text: 'secret' });
    try {
      await page.waitForFunction(() => window.__e2e.events.length >= 2, null, {
        timeout: 8000,
        polling: 50,
      });
    } finally {
      observed.page = await snapshot();
    }
  },
  { timeoutMs: cfg.timeoutMs ?? 40000 },
);
