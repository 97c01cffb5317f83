/**
 * PostgreSQL addresses as libpq and postgres.js read them: one host, or
 * several (`postgres://USER@HOST1:PORT1,HOST2:PORT2/DB?…`), which the
 * driver tries in turn; `target_session_attrs=read-write` makes it keep
 * only the primary of a replicated formation (docs/deploy.md).
 *
 * The WHATWG `URL` reads one host only, so an address is read as its first
 * host's URL plus the list of hosts.
 */

/** A PostgreSQL address, read. */
export interface PostgresAddress {
  /** `HOST[:PORT]`, in the order given. */
  readonly hosts: readonly string[]
  /**
   * The address with its first host only: user, password, database and
   * parameters as the WHATWG `URL` reads them. Change them here, then
   * {@link formatPostgresUrl}.
   */
  readonly url: URL
}

/**
 * Reads `postgres://…` or `postgresql://…`; `undefined` when it is no
 * valid address (an empty host, or what `URL` refuses).
 *
 * @example
 * parsePostgresUrl('postgres://app@db1:5432,db2:5432/fleet')!.hosts
 * // ['db1:5432', 'db2:5432']
 */
export function parsePostgresUrl(text: string): PostgresAddress | undefined {
  const scheme = /^postgres(ql)?:\/\//.exec(text)
  if (scheme === null) return undefined
  const rest = text.slice(scheme[0].length)
  const authorityEnd = rest.search(/[/?#]/)
  const authority = authorityEnd < 0 ? rest : rest.slice(0, authorityEnd)
  const at = authority.lastIndexOf('@')
  const userinfo = authority.slice(0, at + 1)
  const hosts = authority.slice(at + 1).split(',')
  const after = rest.slice(authority.length)
  const urlOf = (host: string) => `${scheme[0]}${userinfo}${host}${after}`
  if (hosts.some((host) => host === '' || !URL.canParse(urlOf(host)))) {
    return undefined
  }
  return { hosts, url: new URL(urlOf(hosts[0]!)) }
}

/** The address as text again, with every host. */
export function formatPostgresUrl(address: PostgresAddress): string {
  const { url, hosts } = address
  const userinfo =
    url.username === '' && url.password === ''
      ? ''
      : `${url.username}${url.password === '' ? '' : `:${url.password}`}@`
  return `${url.protocol}//${userinfo}${hosts.join(',')}${url.pathname}${url.search}${url.hash}`
}
