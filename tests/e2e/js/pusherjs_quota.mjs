// pusher-js (node) against an app on the free plan (100 concurrent connections): the first
// 100 clients connect and receive events; the 101st is refused with close code 4004 and,
// as pusher-js does for 4000-4099, does not reconnect; the first 100 keep receiving events.
// E2E_CONNECTIONS overrides the plan's 100 (the scenario needs to know the quota).
import {
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

const QUOTA = Number(process.env.E2E_CONNECTIONS ?? 100);

runScenario(
  'pusherjs_quota',
  async (observed) => {
    const channel = `quota-${uid()}`;
    const received = new Array(QUOTA).fill(0);
    observed.clients = {};

    step(`${QUOTA} clients connect and subscribe`);
    const clients = [];
    for (let i = 0; i < QUOTA; i += 1) {
      const record = (observed.clients[i] = {});
      const client = newClient({}, record);
      clients.push(client);
      const { channel: subscribed } = await subscribeAndWait(client, channel, {
        label: `${channel} (client ${i})`,
      });
      subscribed.bind('tick', () => {
        received[i] += 1;
      });
      await connected(client, `client ${i}`);
    }

    step('the server SDK publishes to all of them');
    const sdk = serverSdk();
    observed.first_trigger = await trigger(sdk, channel, 'tick', { n: 1 });
    await waitUntil(() => received.every((n) => n === 1), 'every client to get the first tick');

    step('one client more is refused');
    const extra = (observed.over_quota = {});
    const rejected = newClient({}, extra);
    await waitUntil(
      () => ['disconnected', 'failed', 'unavailable'].includes(rejected.connection.state),
      'the client over the quota to be refused',
    );
    await sleep(2500); // a reconnect would show up as another "connecting" within 1 s
    extra.final_state = rejected.connection.state;
    rejected.disconnect();

    step('the first clients are still served');
    observed.second_trigger = await trigger(sdk, channel, 'tick', { n: 2 });
    await waitUntil(() => received.every((n) => n === 2), 'every client to get the second tick');
    observed.received = received;
    observed.states = clients.map((c) => c.connection.state);
  },
  { timeoutMs: 45000 },
);
