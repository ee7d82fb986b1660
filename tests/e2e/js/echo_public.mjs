// Laravel Echo 2 (broadcaster 'pusher', pusher-js passed as options.Pusher) on a
// public channel: `.OrderShipped` (un-namespaced) and `OrderShipped` (resolved
// to App\Events\OrderShipped), events triggered by the npm `pusher` SDK.
import { echoConnected, echoSubscribed, newEcho } from './lib/echo.mjs';
import { runScenario, serverSdk, sleep, step, trigger, uid, waitUntil } from './lib/common.mjs';

runScenario('echo_public', async (observed) => {
  const sdk = serverSdk();
  const name = `orders-${uid()}`;
  const got = { dotted: [], namespaced: [], all: [] };
  observed.channel = name;
  observed.received = got;
  observed.connection = {};

  step('Echo connects and listens');
  const echo = newEcho({ broadcaster: 'pusher', via: 'Pusher', record: observed.connection });
  observed.socket_id = await echoConnected(echo, 'public');
  const channel = echo
    .channel(name)
    .listen('.OrderShipped', (e) => got.dotted.push(e))
    .listen('OrderShipped', (e) => got.namespaced.push(e))
    .listenToAll((event, data) => got.all.push({ event, data }));
  await echoSubscribed(channel, name);

  step('npm SDK triggers OrderShipped and App\\Events\\OrderShipped');
  await trigger(sdk, name, 'OrderShipped', { order: { id: 1, total: '10.00' } });
  await trigger(sdk, name, 'App\\Events\\OrderShipped', { order: { id: 2, total: '20.00' } });
  await waitUntil(() => got.dotted.length && got.namespaced.length, 'both listeners to fire');

  step('stopListening(.OrderShipped) stops delivery to that listener');
  channel.stopListening('.OrderShipped');
  await trigger(sdk, name, 'OrderShipped', { order: { id: 3 } });
  await trigger(sdk, name, 'App\\Events\\OrderShipped', { order: { id: 4 } });
  await waitUntil(() => got.namespaced.length === 2, 'second namespaced event');
  await sleep(200);
  observed.status = echo.connectionStatus();
});
