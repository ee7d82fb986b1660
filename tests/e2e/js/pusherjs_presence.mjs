// pusher-js (node) presence channel: alice (two tabs) and bob.
// Roster (members.count/me/each), pusher:member_added once per user, and
// pusher:member_removed only when a user's last connection leaves.
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

function roster(channel) {
  const members = [];
  channel.members.each((m) => members.push({ id: m.id, info: m.info }));
  members.sort((a, b) => a.id.localeCompare(b.id));
  return { count: channel.members.count, me: channel.members.me, members };
}

runScenario('pusherjs_presence', async (observed) => {
  const sdk = serverSdk();
  const auth = await startAuthServer(sdk, {
    // non-ASCII user_info: channel_data must be signed and relayed byte for byte
    users: { alice: { name: 'Alice' }, bob: { name: 'Bøb 🚀 "the builder"' } },
  });
  const name = `presence-room-${uid()}`;
  const seen = { alice1: [], bob: [], alice2: [] };
  const clients = {};
  const channels = {};
  observed.channel = name;
  observed.events = seen;
  observed.roster = {};
  observed.clients = {};
  observed.http_users = {};

  const join = async (who, userId) => {
    observed.clients[who] = {};
    clients[who] = newClient(
      {
        channelAuthorization: {
          endpoint: `${auth.base}/pusher/auth`,
          transport: 'ajax',
          params: { user_id: userId },
        },
      },
      observed.clients[who],
    );
    await connected(clients[who], who);
    const { channel } = await subscribeAndWait(clients[who], name, { events: seen[who] });
    channels[who] = channel;
    observed.roster[`${who}_on_join`] = roster(channel);
  };
  const count = (who, event) => seen[who].filter((e) => e.event === event).length;
  // An API event after a change proves every earlier message has been delivered.
  let barriers = 0;
  const barrier = async (whoList) => {
    barriers += 1;
    const marker = `barrier-${barriers}`;
    await trigger(sdk, name, 'barrier', { marker });
    await waitUntil(
      () =>
        whoList.every((w) =>
          seen[w].some((e) => e.event === 'barrier' && e.data.marker === marker),
        ),
      `${marker} on ${whoList.join(', ')}`,
    );
  };
  const httpUsers = async (label) => {
    const response = await sdk.get({ path: `/channels/${name}/users` });
    const body = await response.json();
    observed.http_users[label] = body.users.map((u) => u.id).sort();
  };

  step('alice (tab 1) joins');
  await join('alice1', 'alice');

  step('bob joins');
  await join('bob', 'bob');
  await waitUntil(
    () => count('alice1', 'pusher:member_added') === 1,
    'member_added(bob) on alice tab 1',
  );
  await httpUsers('alice_and_bob');

  step('alice opens a second tab');
  await join('alice2', 'alice');
  await barrier(['alice1', 'bob', 'alice2']);
  observed.roster.alice1_after_second_tab = roster(channels.alice1);
  observed.roster.bob_after_second_tab = roster(channels.bob);
  await httpUsers('after_second_tab');

  step('alice closes the second tab (alice is still present)');
  clients.alice2.disconnect();
  await sleep(750);
  await barrier(['alice1', 'bob']);
  observed.roster.bob_after_second_tab_closed = roster(channels.bob);
  await httpUsers('after_second_tab_closed');

  step('alice closes her last tab');
  clients.alice1.disconnect();
  await waitUntil(() => count('bob', 'pusher:member_removed') >= 1, 'member_removed(alice) on bob');
  await sleep(300);
  await barrier(['bob']);
  observed.roster.bob_at_end = roster(channels.bob);
  await httpUsers('at_end');
});
