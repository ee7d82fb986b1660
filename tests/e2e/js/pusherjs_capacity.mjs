// pusher-js (node) against a saturated node (max_node_connections = 1): the second client
// is refused with 4100 "over capacity", backs off and retries every second on its own, and
// gets in as soon as the first client leaves. The HTTP API keeps answering meanwhile.
import { cfg, connected, newClient, runScenario, serverSdk, step, waitUntil } from './lib/common.mjs';

async function throttled() {
  const scheme = cfg.tls ? 'https' : 'http';
  const text = await (await fetch(`${scheme}://${cfg.host}:${cfg.port}/metrics`)).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith('ressonance_connections_throttled_total{limit="max_node_connections"}'));
  return line ? Number(line.split(' ').pop()) : 0;
}

runScenario('pusherjs_capacity', async (observed) => {
  observed.clients = { first: {}, second: {} };

  step('the first client takes the only slot');
  const first = newClient({}, observed.clients.first);
  await connected(first, 'first client');

  step('the second client is refused, and retries by itself');
  const second = newClient({}, observed.clients.second);
  let refusals = 0;
  const poll = async () => {
    refusals = await throttled();
    return refusals >= 2;
  };
  const deadline = Date.now() + 8000;
  while (!(await poll())) {
    if (Date.now() > deadline) throw new Error(`only ${refusals} refusals seen`);
    await new Promise((r) => setTimeout(r, 200));
  }
  observed.refusals_before_slot_freed = refusals;
  observed.second_state_while_full = second.connection.state;

  step('the HTTP API still answers');
  const response = await serverSdk().trigger('capacity-check', 'ping', {});
  observed.trigger_status = response.status;

  step('the first client leaves; the second gets in on a retry');
  first.disconnect();
  const freed = Date.now();
  await connected(second, 'second client');
  observed.second_connected_after_ms = Date.now() - freed;
  observed.second_final_state = second.connection.state;
});
