// Laravel Echo 2 whisper/listenForWhisper between two Echo instances
// (broadcaster 'pusher', a ready pusher-js instance passed as options.client).
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

runScenario('echo_whisper', async (observed) => {
  const sdk = serverSdk();
  const auth = await startAuthServer(sdk, { users: { 1: { name: 'Alice' }, 2: { name: 'Bob' } } });
  const name = `chat.${uid()}`;
  const got = {
    alice: { typing: [], reply: [], barrier: [] },
    bob: { typing: [], reply: [], barrier: [] },
  };
  observed.received = got;
  observed.connection = { alice: {}, bob: {} };

  step('alice and bob join the private chat');
  const echoes = {
    alice: newEcho({
      via: 'client',
      userId: '1',
      authBase: auth.base,
      record: observed.connection.alice,
    }),
    bob: newEcho({
      via: 'client',
      userId: '2',
      authBase: auth.base,
      record: observed.connection.bob,
    }),
  };
  const channels = {};
  for (const who of ['alice', 'bob']) {
    await echoConnected(echoes[who], who);
    channels[who] = echoes[who]
      .private(name)
      .listenForWhisper('typing', (e) => got[who].typing.push(e))
      .listenForWhisper('reply', (e) => got[who].reply.push(e))
      .listen('.barrier', (e) => got[who].barrier.push(e));
    await echoSubscribed(channels[who], `${who} private-${name}`);
  }

  step('alice whispers typing; bob hears it');
  channels.alice.whisper('typing', { name: 'Alice', typing: true });
  await waitUntil(() => got.bob.typing.length, 'typing whisper on bob');

  step('bob whispers reply; alice hears it');
  channels.bob.whisper('reply', { name: 'Bob', text: 'hi ✓' });
  await waitUntil(() => got.alice.reply.length, 'reply whisper on alice');

  step('a later API event proves no whisper came back to its sender');
  await trigger(sdk, `private-${name}`, 'barrier', { n: 1 });
  await waitUntil(() => got.alice.barrier.length && got.bob.barrier.length, 'barrier on both');
  await sleep(200);
});
