// pusher-js (node) connection lifecycle: client-initiated pusher:ping is answered
// (the connection survives many activity timeouts), and an unknown app key is
// refused in a way that stops pusher-js from reconnecting.
import {
  Pusher,
  cfg,
  newClient,
  connected,
  runScenario,
  sleep,
  step,
  waitUntil,
} from './lib/common.mjs';

runScenario('pusherjs_connection', async (observed) => {
  observed.clients = { idle: {}, stranger: {} };

  step('an idle client pings every 300 ms and gets its pongs');
  const idle = newClient({ activityTimeout: 300, pongTimeout: 2000 }, observed.clients.idle);
  let pongs = 0;
  idle.connection.bind('message', (msg) => {
    if (msg.event === 'pusher:pong') pongs += 1;
  });
  observed.idle_socket_id = await connected(idle, 'idle client');
  await waitUntil(() => pongs >= 3, 'three pusher:pong replies', 6000);
  await sleep(500);
  observed.pongs = pongs;
  observed.idle_socket_id_after = idle.connection.socket_id;
  observed.idle_state_after = idle.connection.state;

  step('a client with an unknown app key is refused for good');
  const stranger = new Pusher('no-such-key', {
    cluster: 'ressonance',
    wsHost: cfg.host,
    wsPort: cfg.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
  });
  const record = observed.clients.stranger;
  record.states = [stranger.connection.state];
  record.connection_errors = [];
  stranger.connection.bind('state_change', ({ current }) => record.states.push(current));
  stranger.connection.bind('error', (err) =>
    record.connection_errors.push(JSON.parse(JSON.stringify(err ?? null))),
  );
  await waitUntil(
    () => ['disconnected', 'failed', 'unavailable'].includes(stranger.connection.state),
    'the unknown key to be refused',
  );
  // Reconnecting would show up as another "connecting" within pusher-js's 1 s backoff.
  await sleep(2500);
  observed.stranger_final_state = stranger.connection.state;
  stranger.disconnect();
});
