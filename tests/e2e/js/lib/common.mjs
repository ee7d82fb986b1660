// Shared plumbing for the end-to-end client scenarios.
//
// Every scenario script:
//   * reads the server address and app credentials from the environment
//     (E2E_HOST, E2E_PORT, E2E_APP_ID, E2E_KEY, E2E_SECRET) or from
//     `--host= --port= --app-id= --key= --secret=` arguments;
//   * talks only to 127.0.0.1 (the server under test and its own tiny auth server);
//   * prints exactly one JSON object on stdout ({"ok": true|false, ...});
//   * exits 0 on success, 1 on a failed expectation, 2 on its internal timeout.
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import Pusher from 'pusher-js';
import PusherServer from 'pusher';

function argValue(name) {
  const prefix = `--${name}=`;
  const arg = process.argv.slice(2).find((a) => a.startsWith(prefix));
  return arg === undefined ? undefined : arg.slice(prefix.length);
}

function setting(arg, env, fallback) {
  const value = argValue(arg) ?? process.env[env] ?? fallback;
  if (value === undefined || value === '') {
    throw new Error(`missing setting: pass --${arg}=... or set ${env}`);
  }
  return value;
}

export const cfg = {
  host: setting('host', 'E2E_HOST', '127.0.0.1'),
  port: Number(setting('port', 'E2E_PORT')),
  appId: setting('app-id', 'E2E_APP_ID'),
  key: setting('key', 'E2E_KEY'),
  secret: setting('secret', 'E2E_SECRET'),
  // Overall budget per scenario; E2E_TIMEOUT_MS overrides every script's default.
  timeoutMs: process.env.E2E_TIMEOUT_MS ? Number(process.env.E2E_TIMEOUT_MS) : undefined,
  debug: Boolean(process.env.E2E_DEBUG),
  // E2E_TLS=1: the server speaks https:// and wss:// (Node trusts it via NODE_EXTRA_CA_CERTS).
  tls: Boolean(process.env.E2E_TLS),
};

export const log = (...args) => {
  if (cfg.debug) console.error(new Date().toISOString(), ...args);
};

if (cfg.debug) {
  Pusher.logToConsole = false;
  Pusher.log = (msg) => console.error('[pusher-js]', msg);
}

/** A short random suffix so channel names never collide between runs. */
export const uid = () => randomBytes(4).toString('hex');

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------
// Scenario runner: one JSON result, bounded run time, cleanup on every path.

const cleanups = [];
/** Register something to close when the scenario ends (LIFO). */
export function onCleanup(fn) {
  cleanups.push(fn);
}

let currentStep = 'starting';
const steps = [];
/** Name what the scenario is doing now; a timeout or failure reports it. */
export function step(name) {
  currentStep = name;
  steps.push(name);
  log('step:', name);
}

async function cleanupAll() {
  while (cleanups.length) {
    const fn = cleanups.pop();
    try {
      await Promise.race([fn(), sleep(2000)]);
    } catch (err) {
      log('cleanup error', err);
    }
  }
}

function emit(result, code) {
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(code));
}

/**
 * Run `body(observed)`; `observed` is an object the scenario fills with what the
 * clients saw, so that even a timeout reports everything seen so far.
 */
export function runScenario(name, body, { timeoutMs = cfg.timeoutMs ?? 20000 } = {}) {
  const observed = {};
  const started = Date.now();
  let finished = false;
  const finish = async (result, code) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    await cleanupAll();
    emit({ scenario: name, elapsed_ms: Date.now() - started, ...result }, code);
  };
  const timer = setTimeout(() => {
    finish(
      {
        ok: false,
        error: `internal timeout after ${timeoutMs} ms during step: ${currentStep}`,
        steps,
        observed,
      },
      2,
    );
  }, timeoutMs);
  Promise.resolve()
    .then(() => body(observed))
    .then(
      (extra) => finish({ ok: true, steps, observed, ...(extra || {}) }, 0),
      (err) =>
        finish(
          {
            ok: false,
            error: `${err && err.message ? err.message : String(err)} (step: ${currentStep})`,
            // npm `pusher` RequestError: the HTTP status and body the server answered
            http_status: err && err.status !== undefined ? err.status : undefined,
            http_body: err && err.body !== undefined ? String(err.body) : undefined,
            stack: err && err.stack ? String(err.stack) : undefined,
            steps,
            observed,
          },
          1,
        ),
    );
}

/** Poll `predicate` until it is truthy; reject with `label` after `timeoutMs`. */
export async function waitUntil(predicate, label, timeoutMs = 8000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = predicate();
    if (value) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${label}`);
    await sleep(15);
  }
}

// ---------------------------------------------------------------------------
// The npm server SDK, pointed at the server under test.

export function serverSdk(extra = {}) {
  return new PusherServer({
    appId: cfg.appId,
    key: cfg.key,
    secret: cfg.secret,
    host: cfg.host,
    port: String(cfg.port),
    useTLS: cfg.tls,
    timeout: 5000,
    ...extra,
  });
}

/** Trigger and return the HTTP status and parsed JSON body. */
export async function trigger(sdk, channel, event, data, params) {
  const response = await sdk.trigger(channel, event, data, params);
  return { status: response.status, body: await response.json() };
}

// ---------------------------------------------------------------------------
// pusher-js clients (node build), pointed at the server under test.

export function pusherOptions(extra = {}) {
  return {
    cluster: 'ressonance', // required by pusher-js 8, unused once wsHost is set
    wsHost: cfg.host,
    wsPort: cfg.port,
    wssPort: cfg.port,
    forceTLS: cfg.tls,
    enabledTransports: ['ws'], // with forceTLS, pusher-js's "ws" transport dials wss://
    disableStats: true,
    ...extra,
  };
}

/**
 * A pusher-js client that records its connection errors and state changes in
 * `record` (an object) so scenarios can report them.
 */
export function newClient(extra = {}, record = {}, PusherClass = Pusher) {
  const client = new PusherClass(cfg.key, pusherOptions(extra));
  record.states = [];
  record.connection_errors = [];
  client.connection.bind('state_change', ({ current }) => record.states.push(current));
  client.connection.bind('error', (err) => record.connection_errors.push(describeError(err)));
  onCleanup(() => client.disconnect());
  return client;
}

export function describeError(err) {
  if (err === null || err === undefined) return err;
  const out = {};
  for (const k of ['type', 'error', 'status', 'code', 'message']) {
    if (err[k] !== undefined) out[k] = typeof err[k] === 'object' ? safeJson(err[k]) : err[k];
  }
  if (err.data !== undefined) out.data = safeJson(err.data);
  return out;
}

function safeJson(value) {
  if (value === undefined) return null;
  try {
    return JSON.parse(JSON.stringify(value));
  } catch {
    return String(value);
  }
}

export async function connected(client, label = 'connection') {
  await waitUntil(() => client.connection.state === 'connected', `${label} to reach "connected"`);
  return client.connection.socket_id;
}

/**
 * Subscribe and wait for pusher:subscription_succeeded; resolves with its data.
 * With `events` (an array), every event the channel emits, from the very first
 * one, is appended to it as {event, data} (pusher-js global callbacks get no metadata).
 */
export function subscribeAndWait(client, name, { events, label = name, timeoutMs = 8000 } = {}) {
  const channel = client.subscribe(name);
  if (events) {
    // Snapshot the data: pusher-js hands out live objects (e.g. the Members roster).
    channel.bind_global((event, data) => events.push({ event, data: safeJson(data) }));
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`timed out waiting for subscription_succeeded on ${label}`)),
      timeoutMs,
    );
    channel.bind('pusher:subscription_succeeded', (data) => {
      clearTimeout(timer);
      resolve({ channel, data });
    });
    channel.bind('pusher:subscription_error', (err) => {
      clearTimeout(timer);
      reject(new Error(`subscription_error on ${label}: ${JSON.stringify(describeError(err))}`));
    });
  });
}

// ---------------------------------------------------------------------------
// The application's own auth server (what a Laravel/Express backend would be).

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

/**
 * Start a tiny HTTP server on 127.0.0.1 that authorizes channels and
 * authenticates users with the npm `pusher` SDK, as an application backend does.
 *
 *  POST /pusher/auth       form: socket_id, channel_name, user_id (custom param)
 *  POST /pusher/user-auth  form: socket_id, user_id (custom param)
 *
 * `users` maps a user id to {name, watchlist}. With `numericIds`, digit-only ids go
 * into presence channel_data as numbers, as Laravel sends them. Channels starting with
 * `private-forbidden-` are refused with 403 like a backend denying access.
 * `route(req, res, url)` may serve extra paths (return true when handled).
 */
export async function startAuthServer(sdk, { users = {}, route, numericIds = false } = {}) {
  const requests = [];
  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://127.0.0.1');
      if (route && (await route(req, res, url))) return;
      if (req.method !== 'POST') return sendJson(res, 404, { error: 'not found' });
      const raw = await readBody(req);
      const form = Object.fromEntries(new URLSearchParams(raw));
      const entry = {
        path: url.pathname,
        content_type: req.headers['content-type'],
        form,
        headers: pick(req.headers),
      };
      requests.push(entry);
      log('auth request', url.pathname, form);
      const reply = (status, body) => {
        entry.status = status;
        entry.response_keys = Object.keys(body).sort();
        return sendJson(res, status, body);
      };
      const userId = form.user_id || 'anonymous';
      const user = users[userId] || { name: userId };
      if (url.pathname === '/pusher/auth' || url.pathname === '/broadcasting/auth') {
        const channel = form.channel_name;
        if (channel.startsWith('private-forbidden-') || channel.startsWith('presence-forbidden-')) {
          return reply(403, { error: 'forbidden' });
        }
        const presenceData = channel.startsWith('presence-')
          ? presenceMember(userId, user.name, numericIds)
          : undefined;
        return reply(200, sdk.authorizeChannel(form.socket_id, channel, presenceData));
      }
      if (url.pathname === '/pusher/user-auth' || url.pathname === '/broadcasting/user-auth') {
        const userData = { id: userId, user_info: { name: user.name } };
        if (user.watchlist) userData.watchlist = user.watchlist;
        return reply(200, sdk.authenticateUser(form.socket_id, userData));
      }
      return reply(404, { error: 'not found' });
    } catch (err) {
      log('auth server error', err);
      return sendJson(res, 500, { error: String(err) });
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  onCleanup(
    () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  );
  return { base, requests, server };
}

function presenceMember(userId, name, numericIds) {
  const id = numericIds && /^\d+$/.test(userId) ? Number(userId) : userId;
  return { user_id: id, user_info: { id, name } };
}

function pick(headers) {
  const out = {};
  for (const k of ['x-csrf-token', 'authorization', 'x-requested-with']) {
    if (headers[k] !== undefined) out[k] = headers[k];
  }
  return out;
}

export { Pusher, PusherServer };
