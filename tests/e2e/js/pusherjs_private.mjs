// pusher-js (node) on a private channel authorized by a real HTTP auth endpoint
// (a tiny backend using the npm `pusher` SDK's authorizeChannel).
// Also: a backend refusal (403) and a stolen auth token (signed for another socket).
import {
  connected,
  describeError,
  newClient,
  runScenario,
  serverSdk,
  sleep,
  step,
  subscribeAndWait,
  startAuthServer,
  trigger,
  uid,
  waitUntil,
} from './lib/common.mjs';

runScenario('pusherjs_private', async (observed) => {
  const sdk = serverSdk();
  const auth = await startAuthServer(sdk);
  const name = `private-orders-${uid()}`;
  const forbidden = `private-forbidden-${uid()}`;
  const seen = { alice: [], forbidden: [], mallory: [] };
  observed.channel = name;
  observed.events = seen;
  observed.auth_requests = auth.requests;
  observed.clients = { alice: {}, mallory: {} };

  step('alice connects and subscribes through the auth endpoint');
  const alice = newClient(
    {
      channelAuthorization: {
        endpoint: `${auth.base}/pusher/auth`,
        transport: 'ajax',
        params: { user_id: 'alice' },
      },
    },
    observed.clients.alice,
  );
  observed.alice_socket_id = await connected(alice, 'alice');
  await subscribeAndWait(alice, name, { events: seen.alice });

  step('trigger via npm SDK on the private channel');
  observed.trigger_response = await trigger(sdk, name, 'invoice-paid', {
    invoice: 'INV-7',
    cents: 1999,
  });
  await waitUntil(
    () => seen.alice.some((e) => e.event === 'invoice-paid'),
    'invoice-paid on alice',
  );

  step('backend refuses a channel (403)');
  const refused = alice.subscribe(forbidden);
  refused.bind_global((event, data) => seen.forbidden.push({ event, data: describeError(data) }));
  await waitUntil(
    () => seen.forbidden.some((e) => e.event === 'pusher:subscription_error'),
    'pusher:subscription_error for the refused channel',
  );

  step('mallory replays an auth token that was signed for alice');
  const stolen = sdk.authorizeChannel(observed.alice_socket_id, name);
  const mallory = newClient(
    {
      channelAuthorization: {
        customHandler: (_params, callback) => callback(null, stolen),
      },
    },
    observed.clients.mallory,
  );
  observed.mallory_socket_id = await connected(mallory, 'mallory');
  const malloryChannel = mallory.subscribe(name);
  malloryChannel.bind_global((event, data) =>
    seen.mallory.push({ event, data: describeError(data) }),
  );
  // The server must refuse it: either a channel-scoped pusher:subscription_error
  // or a connection-level pusher:error (both are seen by the app).
  await waitUntil(
    () =>
      seen.mallory.some((e) => e.event === 'pusher:subscription_error') ||
      observed.clients.mallory.connection_errors.length > 0 ||
      malloryChannel.subscribed,
    'the server to answer the stolen-token subscription',
  );
  await sleep(300);

  step('an event on the channel reaches alice but not mallory');
  await trigger(sdk, name, 'invoice-paid', { invoice: 'INV-8', cents: 500 });
  await waitUntil(
    () => seen.alice.filter((e) => e.event === 'invoice-paid').length === 2,
    'second invoice-paid on alice',
  );
  await sleep(300);
  observed.mallory_subscribed = malloryChannel.subscribed;
  observed.mallory_state = mallory.connection.state;
  observed.alice_state = alice.connection.state;
});
