// An app that was just added to the running node's app store (by `ressonance apps create`):
// pusher-js connects with its key (retrying while the node has not picked it up yet; an
// unknown key is refused with 4001, after which pusher-js does not retry by itself) and
// receives an event the npm SDK signs with the app's secret.
import {
  newClient,
  runScenario,
  serverSdk,
  sleep,
  step,
  subscribeAndWait,
  trigger,
  uid,
  waitUntil,
} from './lib/common.mjs';

runScenario('pusherjs_new_app', async (observed) => {
  step('connect with the new key');
  observed.attempts = 0;
  observed.clients = [];
  const deadline = Date.now() + 8000;
  let client;
  for (;;) {
    observed.attempts += 1;
    const record = {};
    observed.clients.push(record);
    client = newClient({}, record);
    const state = await waitUntil(
      () =>
        ['connected', 'disconnected', 'failed', 'unavailable'].includes(client.connection.state) &&
        client.connection.state,
      'a connection outcome',
    );
    if (state === 'connected') break;
    client.disconnect();
    if (Date.now() > deadline) throw new Error(`the new key is still refused: ${state}`);
    await sleep(200);
  }

  step('receive an event signed with the new secret');
  observed.events = [];
  const channel = `shell-${uid()}`;
  await subscribeAndWait(client, channel, { events: observed.events });
  observed.trigger = await trigger(serverSdk(), channel, 'hello', { from: 'a shell' });
  await waitUntil(() => observed.events.some((e) => e.event === 'hello'), 'the hello event');
});
