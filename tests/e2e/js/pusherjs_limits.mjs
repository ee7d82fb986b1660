// pusher-js (node) against the per-connection abuse limits: the app under test allows
// 5 channels per connection and 1 subscription per second (bursts of 5).
// A 6th channel and a second burst of subscriptions are refused with a channel-scoped
// pusher:subscription_error naming the limit; the connection stays up and keeps working.
import {
  connected,
  describeError,
  newClient,
  runScenario,
  serverSdk,
  step,
  subscribeAndWait,
  trigger,
  uid,
  waitUntil,
} from './lib/common.mjs';

/** Subscribe; resolves {succeeded: true} or {succeeded: false, error} (never rejects). */
function outcome(client, name, timeoutMs = 8000) {
  const channel = client.subscribe(name);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ succeeded: false, error: 'no answer' }), timeoutMs);
    channel.bind('pusher:subscription_succeeded', () => {
      clearTimeout(timer);
      resolve({ succeeded: true });
    });
    channel.bind('pusher:subscription_error', (err) => {
      clearTimeout(timer);
      resolve({ succeeded: false, error: describeError(err) });
    });
  });
}

runScenario('pusherjs_limits', async (observed) => {
  const sdk = serverSdk();
  const id = uid();
  const first = [1, 2, 3, 4, 5].map((n) => `limits-${id}-${n}`);
  const events = [];
  observed.clients = { page: {} };

  step('a page connects and subscribes to 5 channels at once');
  const page = newClient({}, observed.clients.page);
  await connected(page, 'page');
  await Promise.all(
    first.map((name, i) => subscribeAndWait(page, name, i === 0 ? { events } : {})),
  );

  step('a 6th channel is refused: max_channels_per_connection');
  observed.sixth = await outcome(page, `limits-${id}-6`);

  step('the connection still works');
  await trigger(sdk, first[0], 'still-here', { ok: true });
  await waitUntil(() => events.some((e) => e.event === 'still-here'), 'still-here event');
  observed.state_after_sixth = page.connection.state;

  step('unsubscribe all, subscribe 5 new ones at once: max_subscriptions_per_sec');
  for (const name of first) page.unsubscribe(name);
  page.unsubscribe(`limits-${id}-6`);
  const second = [1, 2, 3, 4, 5].map((n) => `limits-${id}-again-${n}`);
  observed.second_burst = await Promise.all(second.map((name) => outcome(page, name)));
  observed.final_state = page.connection.state;
  observed.socket_id_changed = page.connection.socket_id === undefined;
});
