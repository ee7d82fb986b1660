// pusher-js (node) over wss:// with forceTLS; the npm `pusher` SDK triggers over https://.
// Run with E2E_TLS=1 and NODE_EXTRA_CA_CERTS pointing at the server's self-signed certificate.
import {
  cfg,
  connected,
  newClient,
  runScenario,
  serverSdk,
  step,
  subscribeAndWait,
  trigger,
  uid,
  waitUntil,
} from './lib/common.mjs';

runScenario('pusherjs_tls', async (observed) => {
  if (!cfg.tls) throw new Error('run this scenario with E2E_TLS=1 against an https:// server');
  const sdk = serverSdk();
  const name = `secure-${uid()}`;
  const seen = [];
  observed.events = seen;
  observed.clients = { tls: {} };

  step('client connects over wss:// (forceTLS) and subscribes');
  const client = newClient({}, observed.clients.tls);
  observed.socket_id = await connected(client, 'wss client');
  observed.transport = client.connection.connection?.transport?.name ?? null;
  observed.socket_url = client.connection.connection?.transport?.socket?.url ?? null;
  await subscribeAndWait(client, name, { events: seen });

  step('trigger over https:// with the npm SDK (useTLS)');
  observed.trigger_response = await trigger(sdk, name, 'secure-event', { over: 'tls' });
  await waitUntil(() => seen.some((e) => e.event === 'secure-event'), 'secure-event over wss');
  observed.state = client.connection.state;
});
