// pusher-js (node) end-to-end encrypted channel.
//
// Import note: in pusher-js 8 the node build (`import Pusher from 'pusher-js'`,
// dist/node/pusher.js) already bundles tweetnacl and enables encrypted channels;
// `pusher-js/with-encryption` points at the *web* build and throws
// "ReferenceError: self is not defined" in Node.
//
// The backend (npm `pusher` with encryptionMasterKeyBase64) returns the
// per-channel shared_secret from authorizeChannel and encrypts on trigger; the
// server only relays {nonce, ciphertext}.
import { randomBytes } from 'node:crypto';
import {
  connected,
  newClient,
  runScenario,
  serverSdk,
  startAuthServer,
  step,
  subscribeAndWait,
  trigger,
  uid,
  waitUntil,
} from './lib/common.mjs';

runScenario('pusherjs_encrypted', async (observed) => {
  const sdk = serverSdk({ encryptionMasterKeyBase64: randomBytes(32).toString('base64') });
  const auth = await startAuthServer(sdk);
  const name = `private-encrypted-vault-${uid()}`;
  const seen = [];
  observed.channel = name;
  observed.events = seen;
  observed.wire = [];
  observed.clients = { alice: {} };
  observed.auth_requests = auth.requests;

  step('alice subscribes to the encrypted channel');
  const alice = newClient(
    {
      channelAuthorization: {
        endpoint: `${auth.base}/pusher/auth`,
        transport: 'ajax',
        params: { user_id: 'alice' },
      },
    },
    observed.clients.alice,
  );
  // What actually travels on the WebSocket for this channel (before decryption).
  alice.connection.bind('message', (msg) => {
    if (msg.channel === name && !msg.event.startsWith('pusher')) {
      observed.wire.push({ event: msg.event, data: msg.data });
    }
  });
  await connected(alice, 'alice');
  await subscribeAndWait(alice, name, { events: seen });

  step('npm SDK triggers an encrypted event');
  const secret = { pin: '4711', owner: 'Alice ✓' };
  observed.trigger_response = await trigger(sdk, name, 'secret-note', secret);
  await waitUntil(
    () => seen.some((e) => e.event === 'secret-note'),
    'decrypted secret-note on alice',
  );
  observed.plaintext_on_wire = observed.wire.some((w) => JSON.stringify(w.data).includes('4711'));
});
