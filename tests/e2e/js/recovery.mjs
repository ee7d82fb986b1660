// Resume after reconnect with the ressonance-js add-on (clients/js, built by the tests) on
// unmodified pusher-js or laravel-echo, through a loopback TCP proxy the scenario cuts.
//
//   E2E_CLIENT          pusherjs (default) or echo
//   E2E_CUT_MS          how long the first cut lasts (5000)
//   E2E_MISSED          events published while cut (100)
//   E2E_LONG_CUT_MS     if set, a second cut that long, past the history window: the app
//                       must get ressonance:resume_failed, then the live stream
//   E2E_UPSTREAMS       node ports the proxy goes to, in turn after each cut (cluster);
//                       the events are published through E2E_PORT
//
// Every event's data is {"n": i}; the scenario records the n the app's own bindings got.
import { RESUME_FAILED, withRecovery } from '../../../clients/js/dist/index.js';
import {
  Pusher,
  cfg,
  newClient,
  onCleanup,
  runScenario,
  serverSdk,
  sleep,
  step,
  uid,
  waitUntil,
} from './lib/common.mjs';
import { newEcho } from './lib/echo.mjs';
import { startProxy } from './lib/proxy.mjs';

const CLIENT = process.env.E2E_CLIENT || 'pusherjs';
const CUT_MS = Number(process.env.E2E_CUT_MS || 5000);
const MISSED = Number(process.env.E2E_MISSED || 100);
const LONG_CUT_MS = process.env.E2E_LONG_CUT_MS ? Number(process.env.E2E_LONG_CUT_MS) : null;
const UPSTREAMS = (process.env.E2E_UPSTREAMS || String(cfg.port))
  .split(',')
  .map((port) => ({ host: cfg.host, port: Number(port) }));

runScenario(
  `recovery_${CLIENT}`,
  async (observed) => {
    const sdk = serverSdk();
    const proxy = await startProxy(UPSTREAMS);
    const name = `chat-${uid()}`;
    const got = (observed.received = []);
    const failures = (observed.resume_failed = []);
    observed.channel = name;
    observed.upstreams = [];
    let next = 0;
    const publish = async (count) => {
      for (let i = 0; i < count; i += 1) {
        await sdk.trigger(name, 'message', { n: next });
        next += 1;
      }
    };

    step(`connect ${CLIENT} through the proxy`);
    cfg.port = proxy.port; // the clients made from here dial the proxy; `sdk` keeps the node
    const record = {};
    observed.client = record;
    let pusher;
    if (CLIENT === 'echo') {
      const echo = newEcho({ broadcaster: 'reverb', record });
      pusher = echo.connector.pusher;
      withRecovery(echo.connector);
      echo
        .channel(name)
        .listen('.message', (data) => got.push(data.n))
        .listen(`.${RESUME_FAILED}`, (failure) => failures.push(failure));
    } else {
      pusher = newClient({}, record, Pusher);
      withRecovery(pusher);
      const channel = pusher.subscribe(name);
      channel.bind('message', (data) => got.push(data.n));
      channel.bind(RESUME_FAILED, (failure) => failures.push(failure));
    }
    await waitUntil(() => pusher.channel(name)?.subscribed, 'the first subscription', 10000);

    step('live events before the cut');
    await publish(5);
    await waitUntil(() => got.length >= 5, 'the first 5 events');

    const cutFor = async (ms, count, label) => {
      step(`${label}: cut for ${ms} ms; ${count} events published meanwhile`);
      proxy.cut();
      await waitUntil(() => pusher.connection.state !== 'connected', 'the client to see the cut');
      const started = Date.now();
      await publish(count);
      await sleep(Math.max(0, ms - (Date.now() - started)));
      proxy.restore({ next: UPSTREAMS.length > 1 });
      observed.upstreams.push(UPSTREAMS[proxy.upstream].port);
      const restored = Date.now();
      await waitUntil(() => pusher.connection.state === 'connected', 'the reconnect', 20000);
      (observed.reconnect_ms ??= []).push(Date.now() - restored);
    };

    await cutFor(CUT_MS, MISSED, 'first cut');
    step('the missed events arrive through the bindings');
    await waitUntil(() => got.length >= 5 + MISSED, `${5 + MISSED} events`, 15000);
    await publish(5);
    await waitUntil(() => got.length >= 10 + MISSED, 'the live events after the resume');
    observed.positions = pusher.__ressonanceRecovery.positions();

    if (LONG_CUT_MS !== null) {
      await cutFor(LONG_CUT_MS, 10, 'long cut');
      step('recovery impossible: the app is told');
      await waitUntil(() => failures.length >= 1, RESUME_FAILED, 15000);
      await publish(3);
      await waitUntil(() => got.includes(next - 1), 'the live events after the failure');
    }
    observed.published = next;
    observed.refused_while_cut = proxy.refused.count;
  },
  { timeoutMs: cfg.timeoutMs ?? 90000 },
);
