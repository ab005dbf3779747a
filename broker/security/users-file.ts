import { existsSync, renameSync, writeFileSync } from 'node:fs'
import { stringify as toYaml } from 'yaml'
import { z } from 'zod'
import { mqfnError } from '../../common/errors.ts'
import { checkPasswordHash } from './password-hash.ts'
import { readStructuredFile } from './watched-file.ts'

/*
 * The users file, JSON or YAML by extension:
 *   users:
 *     sensor-1:
 *       password: scrypt$16384$8$1$<salt>$<hash>
 * Only hashes are stored; `mqfn user add` writes them.
 */

const UserSchema = z.object({
  password: z.string().superRefine((hash, ctx) => {
    const problem = checkPasswordHash(hash)
    if (problem) ctx.addIssue({ code: 'custom', message: problem })
  }),
}).strict()

const UsersFileSchema = z.object({ users: z.record(z.string().min(1), UserSchema).default({}) }).strict()

export type UserEntry = z.output<typeof UserSchema>
export type Users = ReadonlyMap<string, UserEntry>

export function parseUsers(raw: unknown, path: string): Users {
  const result = UsersFileSchema.safeParse(raw ?? {})
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`).join('; ')
    throw mqfnError('MQFN_ERR_USERS_FILE', path, problems)
  }
  return new Map(Object.entries(result.data.users))
}

export function readUsers(path: string): Users {
  if (!existsSync(path)) return new Map()
  let raw: unknown
  try {
    raw = readStructuredFile(path)
  } catch (err) {
    throw mqfnError('MQFN_ERR_USERS_FILE', path, err instanceof Error ? err.message : String(err))
  }
  return parseUsers(raw, path)
}

/** Writes the whole file next to itself and renames it over, so a broker never reads half of it. */
export function writeUsers(path: string, users: Users): void {
  const doc = { users: Object.fromEntries([...users].sort(([a], [b]) => a.localeCompare(b))) }
  const text = path.endsWith('.json') ? `${JSON.stringify(doc, null, 2)}\n` : toYaml(doc)
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, text, { mode: 0o600 })
  renameSync(tmp, path)
}
