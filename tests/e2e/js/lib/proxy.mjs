// A loopback TCP proxy the scenario can cut: every connection through it is destroyed at
// once, and new ones are refused (accepted and closed) until it is restored. Restoring may
// move it to the next upstream, so that a client reconnects to another node.
import net from 'node:net';
import { onCleanup } from './common.mjs';

export async function startProxy(upstreams) {
  let index = 0;
  let isCut = false;
  const live = new Set();
  const refused = { count: 0 };
  const server = net.createServer((client) => {
    if (isCut) {
      refused.count += 1;
      client.destroy();
      return;
    }
    const target = upstreams[index];
    const upstream = net.connect(target.port, target.host);
    live.add(client);
    live.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      live.delete(client);
      live.delete(upstream);
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  onCleanup(
    () =>
      new Promise((resolve) => {
        for (const socket of live) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return {
    port: server.address().port,
    refused,
    /** Upstream index in use. */
    get upstream() {
      return index;
    },
    /** Cut every connection and refuse new ones. */
    cut() {
      isCut = true;
      for (const socket of live) socket.destroy();
      live.clear();
    },
    /** Let connections through again, to the next upstream when `next`. */
    restore({ next = false } = {}) {
      if (next) index = (index + 1) % upstreams.length;
      isCut = false;
    },
  };
}
