// The npm `pusher` SDK checks webhook requests the Python test received, as an app does:
// `pusher.webhook({headers, rawBody}).isValid()`, then `getEvents()`. E2E_WEBHOOKS_FILE is
// a JSON array of {headers (lower-case names), body (the raw text)}.
import { readFileSync } from 'node:fs';
import { runScenario, serverSdk, step } from './lib/common.mjs';

runScenario('webhooks_verify', async (observed) => {
  const requests = JSON.parse(readFileSync(process.env.E2E_WEBHOOKS_FILE, 'utf8'));
  const sdk = serverSdk();
  const forged = serverSdk({ secret: 'not-the-secret' });
  observed.valid = [];
  observed.valid_with_wrong_secret = [];
  observed.events = [];
  step('verify each request');
  for (const request of requests) {
    const webhook = sdk.webhook({ headers: request.headers, rawBody: request.body });
    observed.valid.push(webhook.isValid());
    observed.valid_with_wrong_secret.push(
      forged.webhook({ headers: request.headers, rawBody: request.body }).isValid(),
    );
    observed.events.push(...webhook.getEvents().map((e) => e.name));
  }
});
