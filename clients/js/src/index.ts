/**
 * ressonance-js: resume after reconnect for pusher-js and laravel-echo on a Ressonance server.
 *
 *     import Pusher from 'pusher-js';
 *     import { withRecovery, RESUME_FAILED } from 'ressonance-js';
 *
 *     const pusher = new Pusher(key, options);
 *     withRecovery(pusher);                       // or withRecovery(echo.connector)
 *     channel.bind(RESUME_FAILED, (failure) => reloadState());
 *
 * On a channel that keeps history (the app's `history_channels`), every event carries a
 * serial and `subscription_succeeded` the channel's newest, in a top-level `serial` field
 * that pusher-js does not pass on. The add-on reads it from the raw frames, remembers the
 * highest serial per channel, and when pusher-js resubscribes after a reconnect it adds
 * `resume_after` to the `pusher:subscribe`. The server then sends the missed events, in
 * order and once, through the channel's normal bindings (`channel.bind`, Echo `.listen`),
 * before the live stream; when it cannot, the channel gets `ressonance:resume_failed`
 * (`RESUME_FAILED`) instead. See docs/topics/delivery.md of the Ressonance repository.
 *
 * Nothing else changes: on a server or channel without history no serial ever arrives, the
 * add-on never asks to resume, and pusher-js behaves exactly as without it.
 */

/** The channel event that says the missed events could not all be delivered. */
export const RESUME_FAILED = 'ressonance:resume_failed';

/** Why a resume failed: events no longer kept, a channel without history, a store error. */
export type ResumeFailureReason = 'too_old' | 'no_history' | 'unavailable';

/** The data of `ressonance:resume_failed`, as pusher-js hands it to a binding. */
export interface ResumeFailure {
  reason: ResumeFailureReason;
  /** The serial the client asked to resume after. */
  resume_after: number;
  /** The channel's newest serial (null when it keeps no history). */
  serial: number | null;
}

type Callback = (...args: any[]) => void;

interface Dispatcher {
  bind(event: string, callback: Callback): unknown;
  unbind(event?: string, callback?: Callback): unknown;
}

interface ConnectionManagerLike extends Dispatcher {
  state: string;
  connection?: { transport?: Dispatcher | null } | null;
}

/** What the add-on uses of a pusher-js `Pusher` (7 or 8). */
export interface PusherLike {
  connection: ConnectionManagerLike;
  send_event(name: string, data: any, channel?: string): boolean;
}

/** A laravel-echo `PusherConnector` (drivers `pusher` and `reverb`). */
export interface EchoConnectorLike {
  pusher: PusherLike;
}

/** A laravel-echo `Echo` instance. */
export interface EchoLike {
  connector: EchoConnectorLike;
}

export interface RecoveryOptions {
  /** Serials to resume after, by channel (kept from an earlier page, say). */
  positions?: Record<string, number>;
  /** Called whenever a channel's position moves, to keep it somewhere. */
  onPosition?: (channel: string, serial: number) => void;
}

export interface Recovery {
  readonly pusher: PusherLike;
  /** The highest serial seen on `channel`, if it keeps history. */
  position(channel: string): number | undefined;
  /** Every channel's position. */
  positions(): Record<string, number>;
  /** Stop: later subscribes no longer ask to resume, frames are no longer read. */
  detach(): void;
}

const ATTACHED = '__ressonanceRecovery';
const SERIAL_FIELD = ',"serial":';

function pusherOf(target: PusherLike | EchoConnectorLike | EchoLike): PusherLike {
  if ('connector' in target && target.connector) return target.connector.pusher;
  if ('pusher' in target && target.pusher) return target.pusher;
  return target as PusherLike;
}

/** The channel and serial of a raw server frame, when it carries one. */
function serialOf(text: unknown): [string, number] | undefined {
  if (typeof text !== 'string' || text.charCodeAt(text.length - 1) !== 125) return undefined;
  if (text.lastIndexOf(SERIAL_FIELD) < 0) return undefined; // most frames stop here
  let message: { channel?: unknown; serial?: unknown };
  try {
    message = JSON.parse(text);
  } catch {
    return undefined;
  }
  const { channel, serial } = message;
  if (typeof channel !== 'string' || typeof serial !== 'number' || !Number.isSafeInteger(serial)) {
    return undefined;
  }
  return [channel, serial];
}

/**
 * Make `target` (a pusher-js `Pusher`, or laravel-echo's connector or instance) resume what
 * it missed after each reconnect. Calling it again on the same Pusher returns the same
 * `Recovery`.
 */
export function withRecovery(
  target: PusherLike | EchoConnectorLike | EchoLike,
  options: RecoveryOptions = {},
): Recovery {
  const pusher = pusherOf(target);
  const carrier = pusher as unknown as Record<string, Recovery | undefined>;
  const existing = carrier[ATTACHED];
  if (existing) return existing;

  const known = new Map<string, number>(Object.entries(options.positions ?? {}));
  const onPosition = options.onPosition;
  let transport: Dispatcher | null = null;

  const onFrame = (event: { data?: unknown }): void => {
    const found = serialOf(event && event.data);
    if (!found) return;
    const [channel, serial] = found;
    const before = known.get(channel);
    if (before === undefined || serial > before) {
      known.set(channel, serial);
      if (onPosition) onPosition(channel, serial);
    }
  };

  // pusher-js reads frames on the transport of each new connection; read them there too.
  const attach = (): void => {
    const next = pusher.connection.connection?.transport ?? null;
    if (next === transport) return;
    if (transport) transport.unbind('message', onFrame);
    transport = next;
    if (transport) transport.bind('message', onFrame);
  };

  const send = pusher.send_event;
  const sendEvent = function (this: unknown, name: string, data: any, channel?: string): boolean {
    if (data && typeof data.channel === 'string') {
      if (name === 'pusher:subscribe') {
        const after = known.get(data.channel);
        if (after !== undefined) data = { ...data, resume_after: after };
      } else if (name === 'pusher:unsubscribe') {
        known.delete(data.channel); // a later subscribe starts afresh
      }
    }
    return send.call(pusher, name, data, channel);
  };
  pusher.send_event = sendEvent;
  pusher.connection.bind('connected', attach);
  if (pusher.connection.state === 'connected') attach();

  const recovery: Recovery = {
    pusher,
    position: (channel) => known.get(channel),
    positions: () => Object.fromEntries(known),
    detach: () => {
      pusher.connection.unbind('connected', attach);
      if (transport) transport.unbind('message', onFrame);
      transport = null;
      if (pusher.send_event === sendEvent) pusher.send_event = send;
      delete carrier[ATTACHED];
    },
  };
  Object.defineProperty(pusher, ATTACHED, { value: recovery, configurable: true });
  return recovery;
}
