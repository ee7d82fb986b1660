// pusher-js (node) cache channels: pusher:cache_miss on an empty cache channel,
// and the last event replayed to a late subscriber. Also GET .../channels/{c}?info=cache.
import {
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

runScenario('pusherjs_cache', async (observed) => {
  const sdk = serverSdk();
  const suffix = uid();
  const empty = `cache-empty-${suffix}`;
  const scores = `cache-scores-${suffix}`;
  const seen = { empty: [], scores: [] };
  observed.names = { empty, scores };
  observed.events = seen;
  observed.clients = { fan: {} };

  step('two events are triggered before anyone subscribes');
  await trigger(sdk, scores, 'score', { home: 1, away: 0 });
  await trigger(sdk, scores, 'score', { home: 2, away: 0 });
  const info = await sdk.get({ path: `/channels/${scores}`, params: { info: 'cache' } });
  observed.cache_info = { status: info.status, body: await info.json() };

  step('a late subscriber gets the last event at once');
  const fan = newClient({}, observed.clients.fan);
  await connected(fan, 'fan');
  await subscribeAndWait(fan, scores, { events: seen.scores });
  await waitUntil(() => seen.scores.some((e) => e.event === 'score'), 'the cached score');

  step('an empty cache channel reports pusher:cache_miss');
  await subscribeAndWait(fan, empty, { events: seen.empty });
  await waitUntil(
    () => seen.empty.some((e) => e.event === 'pusher:cache_miss'),
    'pusher:cache_miss',
  );

  step('live events still flow after the replay');
  await trigger(sdk, scores, 'score', { home: 2, away: 1 });
  await waitUntil(
    () => seen.scores.filter((e) => e.event === 'score').length === 2,
    'the live score',
  );
});
