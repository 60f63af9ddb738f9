import { isIP } from "node:net";

/**
 * While auth is off, only requests addressed to a loopback name reach the server: a web page
 * that rebinds its own domain to 127.0.0.1 (DNS rebinding) still sends its domain as Host, so it
 * is turned away before it can read or spend anything. Operators who put a proxy with another
 * name in front list that name in `allowed_hosts`.
 */
export class HostGuard {
  private readonly allowed: ReadonlySet<string>;

  constructor(allowedHosts: readonly string[]) {
    const names = allowedHosts.map(hostnameOf).filter((name) => name !== undefined);
    this.allowed = new Set(names);
  }

  allows(hostHeader: string | undefined): boolean {
    if (!hostHeader) return false;
    const hostname = hostnameOf(hostHeader);
    if (hostname === undefined) return false;
    return isLoopbackName(hostname) || this.allowed.has(hostname);
  }
}

/** Characters that cannot appear in a Host header's host[:port]; a header holding one is refused. */
const NOT_A_HOST = /[\s/?#@\\]/;

/**
 * The host name of a Host header (no port, lower case, no trailing dot, IPv6 in brackets), as
 * the WHATWG URL parser sees it — the same way a browser does, so `127.1` and `[0::1]` are read
 * as the loopback addresses they are.
 */
export function hostnameOf(hostHeader: string): string | undefined {
  if (hostHeader.length > 255 || NOT_A_HOST.test(hostHeader)) return undefined;
  let url: URL;
  try {
    url = new URL(`http://${hostHeader}`);
  } catch {
    return undefined;
  }
  return stripDot(url.hostname);
}

function stripDot(hostname: string): string {
  return hostname.endsWith(".") ? hostname.slice(0, -1) : hostname;
}

/** localhost, 127.0.0.0/8 and [::1] (the URL parser has already normalised each form). */
export function isLoopbackName(hostname: string): boolean {
  if (hostname === "localhost" || hostname === "[::1]") return true;
  return isIP(hostname) === 4 && hostname.startsWith("127.");
}
