// pusher-js clients go through every transition that makes a webhook, on channels named
// with E2E_SUFFIX: alice and bob join a presence channel (occupied, member_added twice),
// alice whispers (client_event with her user_id), subscribes a cache channel (cache_miss),
// bob joins and leaves a public channel (occupied, subscription_count, vacated), then both
// disconnect (member_removed twice, vacated). The receiver is the Python test's.
import {
  connected,
  newClient,
  runScenario,
  serverSdk,
  sleep,
  startAuthServer,
  step,
  subscribeAndWait,
  waitUntil,
} from './lib/common.mjs';

const suffix = process.env.E2E_SUFFIX;

runScenario('webhooks_pusherjs', async (observed) => {
  const sdk = serverSdk();
  const auth = await startAuthServer(sdk, { users: { alice: {}, bob: {} } });
  const room = `presence-room-${suffix}`;
  const news = `news-${suffix}`;
  const cache = `cache-prices-${suffix}`;
  const client = (userId) =>
    newClient(
      {
        channelAuthorization: {
          endpoint: `${auth.base}/pusher/auth`,
          transport: 'ajax',
          params: { user_id: userId },
        },
      },
      (observed[userId] = {}),
    );
  const seen = [];

  step('alice and bob join the presence channel');
  const alice = client('alice');
  const bob = client('bob');
  observed.alice_socket = await connected(alice, 'alice');
  await connected(bob, 'bob');
  const { channel: aliceRoom } = await subscribeAndWait(alice, room);
  await subscribeAndWait(bob, room, { events: seen });

  step('alice whispers');
  aliceRoom.trigger('client-wave', { hello: 'bob' });
  await waitUntil(() => seen.some((e) => e.event === 'client-wave'), 'bob to hear the whisper');

  step('alice misses the cache channel');
  const missed = [];
  await subscribeAndWait(alice, cache, { events: missed });
  await waitUntil(() => missed.some((e) => e.event === 'pusher:cache_miss'), 'cache_miss');

  step('bob joins and leaves a public channel');
  await subscribeAndWait(bob, news);
  await sleep(200);
  bob.unsubscribe(news);
  await sleep(200);

  step('both leave');
  alice.disconnect();
  await sleep(200);
  bob.disconnect();
  await sleep(200);
  return { channels: { room, news, cache } };
});
