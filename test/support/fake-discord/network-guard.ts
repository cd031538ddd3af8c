// Watches every outgoing TCP connection the process opens (http, undici's fetch, ws) through Node's
// `net.client.socket` diagnostics channel, so a test can prove nothing left 127.0.0.1: a request
// to discord.com would show up here as a lookup of that host, even on a machine without network.
import diagnostics from 'node:diagnostics_channel';
import type { Socket } from 'node:net';

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '::1']);

export interface OutboundAttempt {
  /** Host name looked up, when the connection went through DNS. */
  host?: string;
  /** Address connected to (or resolved). */
  address?: string;
}

export interface NetworkWatch {
  readonly attempts: OutboundAttempt[];
  /** Attempts that were not to this machine's loopback. */
  nonLocal(): OutboundAttempt[];
  stop(): void;
}

export function watchOutboundConnections(): NetworkWatch {
  const attempts: OutboundAttempt[] = [];
  const onSocket = (message: unknown) => {
    const { socket } = message as { socket: Socket };
    socket.on('lookup', (_err: Error | null, address: string, _family: unknown, host: string) => {
      attempts.push({ host, address });
    });
    socket.on('connect', () => attempts.push({ address: socket.remoteAddress }));
  };
  diagnostics.subscribe('net.client.socket', onSocket);
  return {
    attempts,
    nonLocal: () =>
      attempts.filter(
        (a) =>
          (a.host !== undefined && !LOCAL_HOSTS.has(a.host)) ||
          (a.address !== undefined && !isLoopback(a.address)),
      ),
    stop: () => diagnostics.unsubscribe('net.client.socket', onSocket),
  };
}

function isLoopback(address: string): boolean {
  return LOCAL_HOSTS.has(address) || address.startsWith('127.') || address === '::ffff:127.0.0.1';
}
