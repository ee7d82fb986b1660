// pusher-js (node) and the npm `pusher` SDK while the app is changed in the app store of a
// running node: the test process changes it when asked on E2E_CONTROL (POST /create,
// /rotate-secret, /disable) and this script watches what the clients see.
//   1. a new app becomes usable within seconds (no restart);
//   2. a new secret: requests signed with the old one get 401, with the new one 200;
//   3. disabling: the live connection is closed with 4003, new ones are refused with 4003.
import {
  cfg,
  newClient,
  connected,
  runScenario,
  serverSdk,
  sleep,
  step,
  subscribeAndWait,
  trigger,
  uid,
  waitUntil,
} from './lib/common.mjs';

const CONTROL = process.env.E2E_CONTROL;
const NEW_SECRET = process.env.E2E_NEW_SECRET;

async function control(action) {
  const response = await fetch(`${CONTROL}/${action}`, { method: 'POST' });
  if (response.status !== 200) throw new Error(`control ${action}: HTTP ${response.status}`);
}

/** Connect a fresh client; resolves with its final state and the codes it was refused with. */
async function attempt(record) {
  const client = newClient({}, record);
  await waitUntil(
    () => ['connected', 'disconnected', 'failed', 'unavailable'].includes(client.connection.state),
    'the connection attempt to settle',
  );
  return client;
}

function codes(record) {
  return record.connection_errors.map((e) => (e.data || (e.error && e.error.data) || {}).code);
}

/** Trigger with `secret`; the HTTP status (200, or the SDK error's status). */
async function status(secret, channel) {
  try {
    const { status: code } = await trigger(serverSdk({ secret }), channel, 'ping', { n: 1 });
    return code;
  } catch (err) {
    if (err && err.status !== undefined) return err.status;
    throw err;
  }
}

runScenario(
  'pusherjs_app_changes',
  async (observed) => {
    observed.clients = { attempts: [], live: {}, late: {} };

    step('before the app exists its key is refused with 4001');
    const before = {};
    (await attempt(before)).disconnect();
    observed.before_codes = codes(before);

    step('create the app in the store; pusher-js connects within seconds');
    await control('create');
    const created = Date.now();
    let live;
    for (;;) {
      const record = {};
      const client = await attempt(record);
      observed.clients.attempts.push({ state: client.connection.state, codes: codes(record) });
      if (client.connection.state === 'connected') {
        live = client;
        observed.clients.live = record;
        break;
      }
      client.disconnect();
      if (Date.now() - created > 10000) throw new Error('the new app was not usable in 10 s');
      await sleep(200);
    }
    observed.usable_after_ms = Date.now() - created;
    await connected(live, 'live client');

    step('events reach the new app');
    const channel = `orders-${uid()}`;
    const events = [];
    await subscribeAndWait(live, channel, { events });
    observed.trigger_status = await status(cfg.secret, channel);
    await waitUntil(() => events.some((e) => e.event === 'ping'), 'the ping event');
    observed.events = events.map((e) => e.event);

    step('rotate the secret: old signatures 401, new ones 200');
    await control('rotate-secret');
    const rotated = Date.now();
    observed.old_secret_statuses = [];
    for (;;) {
      const code = await status(cfg.secret, channel);
      observed.old_secret_statuses.push(code);
      if (code !== 200) break;
      if (Date.now() - rotated > 10000) throw new Error('the old secret still worked after 10 s');
      await sleep(200);
    }
    observed.new_secret_status = await status(NEW_SECRET, channel);
    observed.live_state_after_rotation = live.connection.state;

    step('disable the app: the live connection is closed with 4003');
    await control('disable');
    await waitUntil(() => live.connection.state !== 'connected', 'the live client to be closed', 10000);
    await sleep(1500); // pusher-js would reconnect after 1 s if the code allowed it
    observed.live_final_state = live.connection.state;
    observed.live_codes = codes(observed.clients.live);

    step('a new connection to the disabled app is refused with 4003');
    const late = await attempt(observed.clients.late);
    observed.late_state = late.connection.state;
    observed.late_codes = codes(observed.clients.late);
    late.disconnect();
  },
  { timeoutMs: 40000 },
);

