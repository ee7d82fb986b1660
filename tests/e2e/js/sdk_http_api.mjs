// npm `pusher` SDK against the HTTP API while pusher-js clients are connected:
// GET /channels (occupied channels, prefix filter + user_count), channel info,
// presence users, trigger `info`, triggerBatch, and channels vacating.
import {
  connected,
  newClient,
  runScenario,
  serverSdk,
  startAuthServer,
  step,
  subscribeAndWait,
  uid,
  waitUntil,
  sleep,
} from './lib/common.mjs';

runScenario('sdk_http_api', async (observed) => {
  const sdk = serverSdk();
  const auth = await startAuthServer(sdk, {
    users: { alice: { name: 'Alice' }, bob: { name: 'Bob' } },
  });
  const suffix = uid();
  const names = {
    public: `news-${suffix}`,
    private: `private-inbox-${suffix}`,
    presence: `presence-lobby-${suffix}`,
    empty: `nobody-here-${suffix}`,
  };
  observed.names = names;
  observed.clients = { alice: {}, bob: {} };
  observed.http = {};
  const seen = { alice_public: [], bob_public: [] };
  observed.events = seen;

  const get = async (label, path, params) => {
    const response = await sdk.get({ path, params });
    observed.http[label] = { status: response.status, body: await response.json() };
    return observed.http[label].body;
  };
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

  step('no channels are occupied before anyone subscribes');
  await get('channels_before', '/channels');

  step('alice and bob subscribe');
  const alice = client('alice');
  const bob = client('bob');
  await connected(alice, 'alice');
  await connected(bob, 'bob');
  await subscribeAndWait(alice, names.public, { events: seen.alice_public });
  await subscribeAndWait(alice, names.private);
  await subscribeAndWait(alice, names.presence);
  await subscribeAndWait(bob, names.public, { events: seen.bob_public });
  await subscribeAndWait(bob, names.presence);

  step('query the HTTP API');
  await get('channels', '/channels');
  await get('presence_channels', '/channels', {
    filter_by_prefix: 'presence-',
    info: 'user_count',
  });
  await get('public_channel', `/channels/${names.public}`, { info: 'subscription_count' });
  await get('presence_channel', `/channels/${names.presence}`, { info: 'user_count' });
  await get('empty_channel', `/channels/${names.empty}`);
  await get('presence_users', `/channels/${names.presence}/users`);

  step('trigger with info, and a batch');
  const triggered = await sdk.trigger(
    [names.public, names.presence],
    'with-info',
    { n: 1 },
    { info: 'subscription_count,user_count' },
  );
  observed.http.trigger_with_info = { status: triggered.status, body: await triggered.json() };
  const batch = await sdk.triggerBatch([
    { channel: names.public, name: 'batch-1', data: { n: 1 } },
    { channel: names.public, name: 'batch-2', data: { n: 2 } },
  ]);
  observed.http.batch = { status: batch.status, body: await batch.json() };
  await waitUntil(
    () =>
      ['with-info', 'batch-1', 'batch-2'].every((ev) =>
        seen.bob_public.some((e) => e.event === ev),
      ),
    'with-info, batch-1 and batch-2 on bob',
  );

  step('everyone leaves; the channels are no longer listed');
  alice.disconnect();
  bob.disconnect();
  const deadline = Date.now() + 5000;
  for (;;) {
    const body = await get('channels_after', '/channels');
    if (Object.keys(body.channels || {}).length === 0 || Date.now() > deadline) break;
    await sleep(100);
  }
});
