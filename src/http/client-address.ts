import type { IncomingMessage } from 'node:http';
import proxyaddr from '@fastify/proxy-addr';

/**
 * Which peers may tell us the client's address (X-Forwarded-For): the load balancers in front of
 * the service, by address, CIDR range or proxy-addr keyword (loopback, linklocal, uniquelocal).
 * The client's address is then the nearest one in X-Forwarded-For that is not such a proxy, so a
 * client cannot choose it by sending the header itself: what it sends is further along.
 * "Trust every hop" and hop counts are not offered: the first lets any client pick its address
 * (and so dodge the per-address throttles and write what it likes in the audit trail).
 */
export type TrustedProxies = readonly string[];

/** A trust function for Fastify's `trustProxy` and `clientAddress`; throws TypeError on a bad entry. */
export function compileTrust(proxies: TrustedProxies): (addr: string, hop: number) => boolean {
  return proxyaddr.compile([...proxies]);
}

/** The client's address of a raw request (the WebSocket upgrade), by the same rule as Fastify's `req.ip`. */
export function clientAddress(req: IncomingMessage, trust: ((addr: string, hop: number) => boolean) | null): string | null {
  if (!trust) return req.socket.remoteAddress ?? null;
  return proxyaddr(req, trust) ?? null;
}
