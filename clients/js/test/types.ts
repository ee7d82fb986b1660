// Compiled with `npm test` (tsc --noEmit): the add-on's types accept the real pusher-js 8 and
// laravel-echo 2 objects, and hand a RESUME_FAILED binding a ResumeFailure.
import Pusher from 'pusher-js';
import Echo from 'laravel-echo';
import { RESUME_FAILED, withRecovery, type Recovery, type ResumeFailure } from '../src/index';

const pusher = new Pusher('key', { cluster: '', wsHost: '127.0.0.1', wsPort: 6001, forceTLS: false });
const recovery: Recovery = withRecovery(pusher, {
  positions: { 'chat-1': 1733430000000042 },
  onPosition: (channel: string, serial: number) => sessionStorage.setItem(channel, String(serial)),
});
const position: number | undefined = recovery.position('chat-1');
pusher.subscribe('chat-1').bind(RESUME_FAILED, (failure: ResumeFailure) => {
  const reason: 'too_old' | 'no_history' | 'unavailable' = failure.reason;
  return [reason, failure.resume_after, failure.serial, position];
});

const echo = new Echo({ broadcaster: 'reverb', key: 'key', Pusher, wsHost: '127.0.0.1', wsPort: 6001 });
withRecovery(echo.connector);
withRecovery(echo);
recovery.detach();
