import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto'

/*
 * Passwords are stored as `scrypt$<N>$<r>$<p>$<salt>$<hash>` (base64 salt and hash),
 * so the cost can be raised later without invalidating older entries.
 */

const N = 16384
const R = 8
const P = 1
const KEY_LENGTH = 32
// scrypt needs 128 * N * r bytes; node's default cap (32 MiB) is just enough for N=16384, r=8
const MAX_MEM = 64 * 1024 * 1024

function derive(password: string, salt: Buffer, options: ScryptOptions, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, length, { ...options, maxmem: MAX_MEM }, (err, key) => (err ? reject(err) : resolve(key)))
  })
}

/**
 * A well-formed hash no password matches, at the current cost: checked against for
 * unknown users, so response time does not reveal which names exist.
 */
export const DUMMY_HASH = `scrypt$${N}$${R}$${P}$${Buffer.alloc(16).toString('base64')}$${Buffer.alloc(KEY_LENGTH).toString('base64')}`

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16)
  const hash = await derive(password, salt, { N, r: R, p: P }, KEY_LENGTH)
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${hash.toString('base64')}`
}

/** Why an encoded hash is unusable, or null when it is well formed. */
export function checkPasswordHash(encoded: string): string | null {
  const parts = encoded.split('$')
  if (parts.length !== 6 || parts[0] !== 'scrypt') return 'expected scrypt$N$r$p$salt$hash (write it with `mqfn user add`)'
  const [n, r, p] = parts.slice(1, 4).map(Number) as [number, number, number]
  if (!Number.isInteger(n) || n < 2 || (n & (n - 1)) !== 0 || n > 1 << 20) return 'N must be a power of two up to 2^20'
  if (!Number.isInteger(r) || r < 1 || r > 32 || !Number.isInteger(p) || p < 1 || p > 16) return 'r or p out of range'
  if (Buffer.from(parts[5] as string, 'base64').length < 16) return 'hash too short'
  return null
}

export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  if (checkPasswordHash(encoded) !== null) return false
  const [, n, r, p, salt, hash] = encoded.split('$') as [string, string, string, string, string, string]
  const expected = Buffer.from(hash, 'base64')
  const actual = await derive(password, Buffer.from(salt, 'base64'), { N: Number(n), r: Number(r), p: Number(p) }, expected.length)
  return timingSafeEqual(actual, expected)
}
