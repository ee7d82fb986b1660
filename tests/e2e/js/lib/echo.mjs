// Laravel Echo 2 (ESM only) on top of pusher-js, pointed at the server under test.
import Echo from 'laravel-echo';
import { Pusher, cfg, onCleanup, pusherOptions, waitUntil } from './common.mjs';

/**
 * Build an Echo instance as a Laravel app's bootstrap/echo.js does.
 *  broadcaster: 'pusher' or 'reverb' (reverb passes cluster '' itself)
 *  via: 'Pusher' (pass the constructor) or 'client' (pass a ready pusher-js instance)
 *  userId: sent to the tiny auth backend as an auth param (stands in for the session)
 */
export function newEcho({ broadcaster = 'pusher', via = 'Pusher', userId, authBase, record = {} }) {
  const options = {
    broadcaster,
    key: cfg.key,
    ...pusherOptions(),
  };
  if (authBase) {
    options.authEndpoint = `${authBase}/broadcasting/auth`;
    options.auth = { headers: { 'X-CSRF-TOKEN': 'e2e-csrf' }, params: { user_id: userId } };
  }
  if (broadcaster === 'reverb') delete options.cluster;
  if (via === 'client') {
    options.client = new Pusher(cfg.key, { ...options, cluster: options.cluster ?? '' });
  } else {
    options.Pusher = Pusher;
  }
  const echo = new Echo(options);
  const pusher = echo.connector.pusher;
  record.states = [];
  record.connection_errors = [];
  pusher.connection.bind('state_change', ({ current }) => record.states.push(current));
  pusher.connection.bind('error', (err) =>
    record.connection_errors.push(JSON.parse(JSON.stringify(err ?? null))),
  );
  onCleanup(() => echo.disconnect());
  return echo;
}

export async function echoConnected(echo, label) {
  await waitUntil(() => echo.connectionStatus() === 'connected', `${label} Echo to connect`);
  return echo.socketId();
}

/** Resolve when an Echo channel reports .subscribed(); reject on .error(). */
export function echoSubscribed(channel, label) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`timed out waiting for ${label} to subscribe`)),
      8000,
    );
    channel.subscribed(() => {
      clearTimeout(timer);
      resolve();
    });
    channel.error((err) => {
      clearTimeout(timer);
      reject(new Error(`${label} subscription error: ${JSON.stringify(err)}`));
    });
  });
}
