/*
 * What the listener learned about the other end of a connection, for the
 * authenticator: TLS sockets and WebSocket streams differ, so the listeners
 * record it here when the connection arrives.
 */

export interface PeerCertificate {
  /** Subject CN of the client certificate. */
  cn: string
  /** The certificate chains to the configured CA (tlsCa). */
  verified: boolean
}

/** The peer's address: the socket's, or for a WebSocket stream its HTTP request's. */
export function remoteAddressOf(conn: unknown, req: unknown): string | undefined {
  return (conn as { remoteAddress?: string } | undefined)?.remoteAddress ?? (req as { socket?: { remoteAddress?: string } } | undefined)?.socket?.remoteAddress
}

const PEER = Symbol('mqfn.peerCertificate')

type Carrier = { [PEER]?: PeerCertificate }

export function setPeerCertificate(conn: object, cert: PeerCertificate): void {
  ;(conn as Carrier)[PEER] = cert
}

export function peerCertificateOf(conn: object | undefined): PeerCertificate | undefined {
  return conn ? (conn as Carrier)[PEER] : undefined
}
