// Laravel Echo 2 presence (broadcaster 'reverb'): join().here/joining/leaving,
// a second tab of the same user, and leaving by echo.leave() (unsubscribe).
// User ids are integers, as a Laravel backend sends them.
import { echoConnected, echoSubscribed, newEcho } from './lib/echo.mjs';
import {
  runScenario,
  serverSdk,
  sleep,
  startAuthServer,
  step,
  trigger,
  uid,
  waitUntil,
} from './lib/common.mjs';

const byId = (users) => [...users].sort((a, b) => String(a.id).localeCompare(String(b.id)));

runScenario('echo_presence', async (observed) => {
  const sdk = serverSdk();
  // Laravel's presence auth sends integer user ids: {"user_id":1,"user_info":{"id":1,...}}
  const auth = await startAuthServer(sdk, {
    users: { 1: { name: 'Alice' }, 2: { name: 'Bob' } },
    numericIds: true,
  });
  const room = `room.${uid()}`;
  const log = { here: {}, joining: {}, leaving: {}, barrier: {} };
  observed.room = `presence-${room}`;
  observed.auth_requests = auth.requests;
  observed.members_me = {};
  observed.callbacks = log;
  observed.connection = {};
  const echoes = {};
  let barriers = 0;

  const join = async (who, userId) => {
    observed.connection[who] = {};
    log.here[who] = [];
    log.joining[who] = [];
    log.leaving[who] = [];
    log.barrier[who] = [];
    echoes[who] = newEcho({
      broadcaster: 'reverb',
      userId,
      authBase: auth.base,
      record: observed.connection[who],
    });
    await echoConnected(echoes[who], who);
    const channel = echoes[who]
      .join(room)
      .here((users) => log.here[who].push(byId(users)))
      .joining((user) => log.joining[who].push(user))
      .leaving((user) => log.leaving[who].push(user))
      .listen('.barrier', (e) => log.barrier[who].push(e.n));
    await echoSubscribed(channel, `${who} presence-${room}`);
    observed.members_me[who] = echoes[who].connector.pusher.channel(`presence-${room}`).members.me;
  };
  const barrier = async (whoList) => {
    barriers += 1;
    const n = barriers;
    await trigger(sdk, `presence-${room}`, 'barrier', { n });
    await waitUntil(
      () => whoList.every((w) => log.barrier[w].includes(n)),
      `barrier ${n} on ${whoList}`,
    );
  };

  step('alice joins');
  await join('alice', '1');

  step('bob joins');
  await join('bob', '2');
  await waitUntil(() => log.joining.alice.length, 'joining(bob) on alice');

  step('bob opens a second tab');
  await join('bob_tab2', '2');
  await barrier(['alice', 'bob', 'bob_tab2']);

  step('bob leaves the room in his second tab only');
  echoes.bob_tab2.leave(room);
  await sleep(750);
  await barrier(['alice', 'bob']);
  observed.alice_leaving_while_bob_had_a_tab = log.leaving.alice.length;

  step('bob leaves the room in his last tab');
  echoes.bob.leave(room);
  await waitUntil(() => log.leaving.alice.length, 'leaving(bob) on alice');
  await sleep(300);
  await barrier(['alice']);
});
