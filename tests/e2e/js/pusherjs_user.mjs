// pusher-js (node) user sign-in through a real user-authentication endpoint
// (npm `pusher` authenticateUser), server-to-user events (npm `sendToUser`),
// watchlist online/offline events, and terminateUserConnections.
import {
  connected,
  newClient,
  runScenario,
  serverSdk,
  sleep,
  startAuthServer,
  step,
  uid,
  waitUntil,
} from './lib/common.mjs';

runScenario('pusherjs_user', async (observed) => {
  const sdk = serverSdk();
  const suffix = uid();
  const alice = `alice-${suffix}`;
  const bob = `bob-${suffix}`;
  const auth = await startAuthServer(sdk, {
    users: {
      [alice]: { name: 'Alice', watchlist: [bob] },
      [bob]: { name: 'Bob', watchlist: [alice] },
    },
  });
  observed.users = { alice, bob };
  observed.user_events = { alice: [], bob: [] };
  observed.watchlist = { alice: [], bob: [] };
  observed.raw_signin = { alice: [], bob: [] };
  observed.signin_errors = { alice: [], bob: [] };
  observed.clients = { alice: {}, bob: {} };
  observed.auth_requests = auth.requests;

  const signedIn = async (who, userId) => {
    const client = newClient(
      {
        userAuthentication: {
          endpoint: `${auth.base}/pusher/user-auth`,
          transport: 'ajax',
          params: { user_id: userId },
        },
      },
      observed.clients[who],
    );
    client.connection.bind('message', (msg) => {
      if (msg.event === 'pusher:signin_success') observed.raw_signin[who].push(msg.data);
    });
    client.user.bind('pusher:signin_error', (err) => observed.signin_errors[who].push(err));
    client.user.bind_global((event, data) => observed.user_events[who].push({ event, data }));
    for (const name of ['online', 'offline']) {
      client.user.watchlist.bind(name, (event) =>
        observed.watchlist[who].push({ name: event.name, user_ids: [...event.user_ids] }),
      );
    }
    await connected(client, who);
    client.signin();
    await waitUntil(() => client.user.user_data, `${who} to be signed in (pusher:signin_success)`);
    await waitUntil(
      () => client.user.serverToUserChannel && client.user.serverToUserChannel.subscribed,
      `${who}'s #server-to-user channel subscription to succeed`,
    );
    observed[`${who}_user_data`] = client.user.user_data;
    return client;
  };
  const onlineSeen = (who, id, name) =>
    observed.watchlist[who].some((e) => e.name === name && e.user_ids.includes(id));

  step('alice signs in');
  await signedIn('alice', alice);

  step('npm SDK sendToUser(alice)');
  const response = await sdk.sendToUser(alice, 'invoice-ready', {
    invoice: 'INV-1',
    total: '9.99',
  });
  observed.send_to_user_status = response.status;
  await waitUntil(
    () => observed.user_events.alice.some((e) => e.event === 'invoice-ready'),
    'invoice-ready on alice.user',
  );

  step('bob signs in; alice is told bob is online');
  const bobClient = await signedIn('bob', bob);
  await waitUntil(() => onlineSeen('alice', bob, 'online'), 'watchlist online(bob) on alice');
  await waitUntil(() => onlineSeen('bob', alice, 'online'), 'watchlist online(alice) on bob');

  step('bob opens a second signed-in tab, then closes it (bob stays online)');
  observed.clients.bob2 = {};
  observed.user_events.bob2 = [];
  observed.watchlist.bob2 = [];
  observed.raw_signin.bob2 = [];
  observed.signin_errors.bob2 = [];
  const bobTab2 = await signedIn('bob2', bob);
  bobTab2.disconnect();
  await sleep(750);
  // A server-to-user event after the close proves alice's stream moved past it.
  await sdk.sendToUser(alice, 'barrier', { n: 1 });
  await waitUntil(
    () => observed.user_events.alice.some((e) => e.event === 'barrier'),
    'barrier on alice.user',
  );
  observed.alice_watchlist_before_last_bob_leaves = observed.watchlist.alice.length;

  step('bob disconnects his last connection; alice is told bob is offline');
  bobClient.disconnect();
  await waitUntil(
    () =>
      observed.watchlist.alice
        .slice(observed.alice_watchlist_before_last_bob_leaves)
        .some((e) => e.name === 'offline' && e.user_ids.includes(bob)),
    'watchlist offline(bob) on alice',
  );

  step('npm SDK terminateUserConnections(alice) closes her connection');
  const aliceStates = observed.clients.alice.states;
  const statesBefore = aliceStates.length;
  const terminated = await sdk.terminateUserConnections(alice);
  observed.terminate = { status: terminated.status, body: await terminated.json() };
  await waitUntil(
    () => aliceStates.slice(statesBefore).some((state) => state !== 'connected'),
    "alice's connection to be closed",
  );
  await sleep(1500); // pusher-js would have reconnected by now if it meant to
  observed.alice_states_after_terminate = aliceStates.slice(statesBefore);
  observed.alice_errors_after_terminate = observed.clients.alice.connection_errors.slice();
});
