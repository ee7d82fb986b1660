// pusher-js (node) on a public channel; events triggered by the npm `pusher` SDK.
// Also: socket_id exclusion and pusher:subscription_count (enabled for the e2e app).
import {
  connected,
  newClient,
  runScenario,
  serverSdk,
  step,
  subscribeAndWait,
  trigger,
  uid,
  waitUntil,
} from './lib/common.mjs';

runScenario('pusherjs_public', async (observed) => {
  const sdk = serverSdk();
  const name = `orders-${uid()}`;
  const seen = { first: [], second: [] };
  observed.channel = name;
  observed.events = seen;
  observed.clients = { first: {}, second: {} };
  const got = (who, event) => seen[who].filter((e) => e.event === event);

  step('first client connects and subscribes');
  const first = newClient({}, observed.clients.first);
  observed.first_socket_id = await connected(first, 'first client');
  await subscribeAndWait(first, name, { events: seen.first });

  step('trigger order-shipped via npm SDK');
  const payload = { order_id: 42, items: ['book', 'pen'], note: 'héllo ✓ "quoted"' };
  observed.trigger_response = await trigger(sdk, name, 'order-shipped', payload);
  await waitUntil(() => got('first', 'order-shipped').length, 'order-shipped on first client');

  step('trigger a plain string payload');
  await trigger(sdk, name, 'plain-text', 'just a string');
  await waitUntil(() => got('first', 'plain-text').length, 'plain-text on first client');

  step('second client subscribes (subscription_count goes to 2)');
  const second = newClient({}, observed.clients.second);
  observed.second_socket_id = await connected(second, 'second client');
  await subscribeAndWait(second, name, { events: seen.second });
  await waitUntil(
    () => got('first', 'pusher:subscription_count').some((e) => e.data.subscription_count === 2),
    'pusher:subscription_count 2 on first client',
  );

  step('trigger excluding the first client by socket_id');
  await trigger(sdk, name, 'not-for-first', { n: 1 }, { socket_id: observed.first_socket_id });
  await waitUntil(() => got('second', 'not-for-first').length, 'not-for-first on second client');
  // A later event to both proves the first client's stream has moved past it.
  await trigger(sdk, name, 'for-both', { n: 2 });
  await waitUntil(
    () => got('first', 'for-both').length && got('second', 'for-both').length,
    'for-both on both clients',
  );

  step('second client unsubscribes (subscription_count back to 1)');
  const countsBefore = got('first', 'pusher:subscription_count').length;
  second.unsubscribe(name);
  await waitUntil(
    () =>
      got('first', 'pusher:subscription_count')
        .slice(countsBefore)
        .some((e) => e.data.subscription_count === 1),
    'pusher:subscription_count 1 on first client after unsubscribe',
  );
  observed.first_state = first.connection.state;
});
