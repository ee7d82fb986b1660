// pusher-js (node) client events: delivered to the other subscribers, never
// echoed to the sender; on presence channels they carry the sender's user_id.
import {
  connected,
  newClient,
  runScenario,
  serverSdk,
  sleep,
  startAuthServer,
  step,
  subscribeAndWait,
  trigger,
  uid,
  waitUntil,
} from './lib/common.mjs';

runScenario('pusherjs_client_events', async (observed) => {
  const sdk = serverSdk();
  const auth = await startAuthServer(sdk, {
    users: { alice: { name: 'Alice' }, bob: { name: 'Bob' } },
  });
  const privateName = `private-chat-${uid()}`;
  const presenceName = `presence-chat-${uid()}`;
  const seen = { alice: [], bob: [], alice_presence: [], bob_presence: [] };
  const metadata = { bob_presence: [] };
  observed.events = seen;
  observed.presence_metadata = metadata;
  observed.clients = { alice: {}, bob: {} };
  observed.trigger_returned = {};

  const client = (who) =>
    newClient(
      {
        channelAuthorization: {
          endpoint: `${auth.base}/pusher/auth`,
          transport: 'ajax',
          params: { user_id: who },
        },
      },
      observed.clients[who],
    );
  const has = (who, event, pred = () => true) =>
    seen[who].some((e) => e.event === event && pred(e.data));

  step('alice and bob subscribe to the private channel');
  const alice = client('alice');
  const bob = client('bob');
  await connected(alice, 'alice');
  await connected(bob, 'bob');
  const { channel: aliceChannel } = await subscribeAndWait(alice, privateName, {
    events: seen.alice,
  });
  const { channel: bobChannel } = await subscribeAndWait(bob, privateName, { events: seen.bob });

  step('alice sends client-typing; bob receives it');
  observed.trigger_returned.alice = aliceChannel.trigger('client-typing', {
    who: 'alice',
    text: 'hé ✓',
  });
  await waitUntil(() => has('bob', 'client-typing'), 'client-typing on bob');

  step('bob answers with client-reply; alice receives it');
  observed.trigger_returned.bob = bobChannel.trigger('client-reply', { who: 'bob' });
  await waitUntil(() => has('alice', 'client-reply'), 'client-reply on alice');

  step('an API event after both proves neither sender got its own event back');
  await trigger(sdk, privateName, 'barrier', { n: 1 });
  await waitUntil(() => has('alice', 'barrier') && has('bob', 'barrier'), 'barrier on both');
  await sleep(200);

  step('client event on a presence channel carries the sender user_id');
  await subscribeAndWait(alice, presenceName, { events: seen.alice_presence });
  const { channel: bobPresence } = await subscribeAndWait(bob, presenceName, {
    events: seen.bob_presence,
  });
  bobPresence.bind('client-wave', (data, meta) => metadata.bob_presence.push(meta));
  alice.channel(presenceName).trigger('client-wave', { hand: 'right' });
  await waitUntil(() => metadata.bob_presence.length === 1, 'client-wave on bob (presence)');
  await trigger(sdk, presenceName, 'barrier', { n: 2 });
  await waitUntil(
    () =>
      seen.alice_presence.some((e) => e.event === 'barrier') &&
      seen.bob_presence.some((e) => e.event === 'barrier'),
    'presence barrier on both',
  );
  observed.states = { alice: alice.connection.state, bob: bob.connection.state };
});
