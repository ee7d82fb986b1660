// The admin HTTP API driven over HTTP, as an operator's script would (fetch), with
// pusher-js and the npm `pusher` SDK using the app it creates:
// create an app -> pusher-js connects with its key and receives an event signed with its
// secret -> rotate the secret -> the old secret is refused, the new one works -> disable the
// app -> its live connection is closed with 4003 and a new one is refused with 4003.
// The E2E_APP_* credentials are not used: the app under test is the one created here.
import {
  Pusher,
  PusherServer,
  cfg,
  describeError,
  onCleanup,
  pusherOptions,
  runScenario,
  sleep,
  step,
  subscribeAndWait,
  uid,
  waitUntil,
} from './lib/common.mjs';

const token = process.env.E2E_ADMIN_TOKEN;
const scheme = cfg.tls ? 'https' : 'http';
const admin = `${scheme}://${cfg.host}:${cfg.port}/admin/v1`;

async function call(method, path, body, headers = { Authorization: `Bearer ${token}` }) {
  const response = await fetch(admin + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return {
    status: response.status,
    body: json,
    www_authenticate: response.headers.get('www-authenticate'),
    location: response.headers.get('location'),
  };
}

function sdkFor(app, secret) {
  return new PusherServer({
    appId: app.id,
    key: app.key,
    secret,
    host: cfg.host,
    port: String(cfg.port),
    useTLS: cfg.tls,
    timeout: 5000,
  });
}

async function triggerStatus(sdk, channel, event, data) {
  try {
    const response = await sdk.trigger(channel, event, data);
    return response.status;
  } catch (err) {
    if (err && err.status !== undefined) return err.status;
    throw err;
  }
}

/** A pusher-js client of `key` that records every close code it sees. */
function client(key, record) {
  const pusher = new Pusher(key, pusherOptions());
  record.states = [];
  record.errors = [];
  pusher.connection.bind('state_change', ({ current }) => record.states.push(current));
  pusher.connection.bind('error', (err) => record.errors.push(describeError(err)));
  onCleanup(() => pusher.disconnect());
  return pusher;
}

/** Connect with `key`, retrying while the nodes have not picked the new app up yet. */
async function connectWhenKnown(key, record, timeoutMs = 8000) {
  const deadline = Date.now() + timeoutMs;
  record.attempts = 0;
  for (;;) {
    record.attempts += 1;
    const pusher = client(key, record);
    const outcome = await waitUntil(
      () => {
        const state = pusher.connection.state;
        return ['connected', 'disconnected', 'failed', 'unavailable'].includes(state) && state;
      },
      'a connection outcome',
    );
    if (outcome === 'connected') return pusher;
    pusher.disconnect();
    if (Date.now() > deadline) throw new Error(`key ${key} still refused: ${outcome}`);
    await sleep(200);
  }
}

// pusher-js reports a refusal as {type: 'PusherError', data: {code}}, or wrapped in a
// WebSocketError ({error: {data: {code}}}) when it comes at connect.
const closeCodes = (record) =>
  record.errors
    .map((e) => e.data?.code ?? e.error?.data?.code ?? e.code)
    .filter((code) => code !== undefined && code !== null);

runScenario(
  'admin_api',
  async (observed) => {
    step('without a token the API refuses, and says how to authenticate');
    observed.no_token = await call('GET', '/apps', undefined, {});
    observed.wrong_token = await call('GET', '/apps', undefined, {
      Authorization: 'Bearer not-the-token-at-all',
    });
    const openapi = await call('GET', '/openapi.json', undefined, {});
    observed.openapi = { status: openapi.status, version: openapi.body.openapi };

    step('create an app');
    const created = await call('POST', '/apps', { name: `e2e ${uid()}`, plan: 'free' });
    observed.created = created;
    if (created.status !== 201) throw new Error(`create answered ${created.status}`);
    const app = created.body;
    observed.listed = await call('GET', '/apps');

    step('pusher-js connects with the new key and receives an event signed with the secret');
    observed.first = {};
    const first = await connectWhenKnown(app.key, observed.first);
    const channel = `orders-${uid()}`;
    const received = [];
    await subscribeAndWait(first, channel, { events: received });
    observed.first_trigger = await triggerStatus(sdkFor(app, app.secret), channel, 'made', {
      n: 1,
    });
    await waitUntil(() => received.some((e) => e.event === 'made'), 'the first event');

    step('rotate the secret: the old one stops signing, the new one signs');
    const rotated = await call('POST', `/apps/${app.id}/rotate-secret`);
    observed.rotated = { status: rotated.status, hint: rotated.body.secret_hint };
    observed.rotated_secret_differs = rotated.body.secret !== app.secret;
    observed.shown_after_rotate = await call('GET', `/apps/${app.id}`);
    const oldSdk = sdkFor(app, app.secret);
    let oldStatus;
    const deadline = Date.now() + 8000;
    for (;;) {
      oldStatus = await triggerStatus(oldSdk, channel, 'old-secret', { n: 2 });
      if (oldStatus === 401 || Date.now() > deadline) break;
      await sleep(200);
    }
    observed.old_secret_status = oldStatus;
    observed.new_secret_status = await triggerStatus(
      sdkFor(app, rotated.body.secret),
      channel,
      'new-secret',
      { n: 3 },
    );
    await waitUntil(() => received.some((e) => e.event === 'new-secret'), 'the new-secret event');
    observed.received = received.filter((e) => !e.event.startsWith('pusher:')).map((e) => e.event);

    step("read the app's usage: the events above were counted");
    // Pusher's count: one message per publish plus one per delivered copy.
    const expected = 2 * observed.received.length;
    observed.usage = await (async () => {
      const until = Date.now() + 8000; // nodes add their counts to the store once a second
      for (;;) {
        const usage = await call('GET', `/apps/${app.id}/usage?days=2`);
        if (usage.status !== 200 || usage.body.total_messages >= expected || Date.now() > until) {
          return usage;
        }
        await sleep(200);
      }
    })();

    step('disable the app: the live connection is closed with 4003, new ones are refused');
    observed.disabled = await call('POST', `/apps/${app.id}/disable`);
    await waitUntil(() => closeCodes(observed.first).includes(4003), 'close code 4003', 8000);
    await waitUntil(() => first.connection.state !== 'connected', 'the client to go');
    observed.first_state_after_disable = first.connection.state;
    observed.late = {};
    const late = client(app.key, observed.late);
    await waitUntil(() => closeCodes(observed.late).includes(4003), 'a refusal with 4003');
    await sleep(1500); // 4003 is a "do not reconnect" code: pusher-js must stay away
    observed.late_state = late.connection.state;
    observed.late_connecting = observed.late.states.filter((s) => s === 'connecting').length;

    step('delete it');
    observed.deleted = await call('DELETE', `/apps/${app.id}`);
    observed.shown_after_delete = await call('GET', `/apps/${app.id}`);
  },
  { timeoutMs: 40000 },
);
