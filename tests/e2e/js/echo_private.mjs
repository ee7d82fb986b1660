// Laravel Echo 2 (broadcaster 'reverb', pusher-js passed as options.Pusher):
// private().listen(), notification() on App.Models.User.{id}, encryptedPrivate()
// and a private channel the backend refuses (Echo .error()). Auth goes to
// /broadcasting/auth.
import { randomBytes } from 'node:crypto';
import { echoConnected, echoSubscribed, newEcho } from './lib/echo.mjs';
import {
  runScenario,
  serverSdk,
  startAuthServer,
  step,
  trigger,
  uid,
  waitUntil,
} from './lib/common.mjs';

runScenario('echo_private', async (observed) => {
  const sdk = serverSdk({ encryptionMasterKeyBase64: randomBytes(32).toString('base64') });
  const auth = await startAuthServer(sdk, { users: { 7: { name: 'Alice' } } });
  const suffix = uid();
  const ordersName = `orders.${suffix}`;
  const userChannel = `App.Models.User.7.${suffix}`;
  const got = { order_paid: [], notifications: [], encrypted: [], errors: [] };
  observed.received = got;
  observed.auth_requests = auth.requests;
  observed.connection = {};

  step('Echo connects');
  const echo = newEcho({
    broadcaster: 'reverb',
    via: 'Pusher',
    userId: '7',
    authBase: auth.base,
    record: observed.connection,
  });
  observed.socket_id = await echoConnected(echo, 'private');

  step('private(orders.x).listen(OrderPaid)');
  const orders = echo.private(ordersName).listen('OrderPaid', (e) => got.order_paid.push(e));
  await echoSubscribed(orders, `private-${ordersName}`);
  await trigger(sdk, `private-${ordersName}`, 'App\\Events\\OrderPaid', { order: { id: 99 } });
  await waitUntil(() => got.order_paid.length, 'OrderPaid on the private channel');

  step('private(App.Models.User.7).notification()');
  const notifications = echo.private(userChannel).notification((n) => got.notifications.push(n));
  await echoSubscribed(notifications, `private-${userChannel}`);
  await trigger(
    sdk,
    `private-${userChannel}`,
    'Illuminate\\Notifications\\Events\\BroadcastNotificationCreated',
    {
      id: 'b6f1c2d0-0000-4000-8000-000000000001',
      type: 'App\\Notifications\\InvoicePaid',
      amount: 42,
    },
  );
  await waitUntil(() => got.notifications.length, 'the broadcast notification');

  step('encryptedPrivate(vault.x).listen(SecretRotated)');
  const vault = echo
    .encryptedPrivate(`vault.${suffix}`)
    .listen('SecretRotated', (e) => got.encrypted.push(e));
  await echoSubscribed(vault, `private-encrypted-vault.${suffix}`);
  await trigger(sdk, `private-encrypted-vault.${suffix}`, 'App\\Events\\SecretRotated', {
    key_id: 'k-2',
  });
  await waitUntil(() => got.encrypted.length, 'the decrypted SecretRotated');

  step('a channel the backend refuses reports through .error()');
  echo.private(`forbidden-${suffix}`).error((err) => got.errors.push(err));
  await waitUntil(() => got.errors.length, 'Echo .error() for the refused channel');
  observed.status = echo.connectionStatus();
});
