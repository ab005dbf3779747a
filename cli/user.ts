import { createInterface } from 'node:readline'
import { Writable } from 'node:stream'
import { BROKER_ENV } from '../broker/config.ts'
import { errorMessage } from '../common/errors.ts'
import { HELP, parseCommand, UsageError } from './args.ts'
import { hashPassword } from '../broker/security/password-hash.ts'
import { readUsers, writeUsers } from '../broker/security/users-file.ts'

/*
 * `mqfn user add|remove|list`: edits the users file the broker reads (and re-reads
 * on change, so no restart). Only scrypt hashes are written.
 * Exit status: 0 done, 1 no such user / bad file, 2 usage error.
 */

export const USER_USAGE = `usage: mqfn user <add|remove|list> [name] [--file users.yaml] [--password <p> | --password-stdin]

  add <name>      add the user or change its password; the password is read from
                  stdin (--password-stdin, or a prompt on a terminal) or given
                  with --password (visible in shell history and ps)
  remove <name>   remove the user
  list            print the user names

The file is --file or MQFN_USERS_FILE; JSON when it ends in .json, else YAML.
A running broker picks up changes within a second.`

function readLine(prompt: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const input = process.stdin
    // on a terminal readline echoes what is typed to its output: a sink keeps the
    // password off the screen (the terminal's own echo is off while readline reads raw)
    const silent = new Writable({ write: (_chunk, _encoding, next) => next() })
    const rl = createInterface({ input, output: prompt ? silent : undefined, terminal: Boolean(prompt) })
    if (prompt) process.stderr.write(prompt)
    let done = false
    rl.once('line', (line) => {
      done = true
      rl.close()
      if (prompt) process.stderr.write('\n')
      resolve(line)
    })
    rl.once('close', () => {
      if (!done) reject(new Error('no password on stdin'))
    })
  })
}

export async function userMain(argv: readonly string[]): Promise<number> {
  const first = argv.find((a) => !a.startsWith('-'))
  const parsed = parseCommand(first === 'add' || first === 'remove' || first === 'list' ? `user ${first}` : 'user', USER_USAGE, {
    args: [...argv],
    allowPositionals: true,
    options: { ...HELP, file: { type: 'string' }, password: { type: 'string' }, 'password-stdin': { type: 'boolean' } },
  })
  if (!parsed) return 0
  // the broker's usersFile setting, by the variable the broker reads it from
  const file = parsed.values.file ?? process.env[BROKER_ENV.usersFile]
  let password = parsed.values.password
  const fromStdin = parsed.values['password-stdin'] === true
  const [command, name, ...extra] = parsed.positionals
  if (command === undefined) throw new UsageError('missing command: add, remove or list')
  if (!['add', 'remove', 'list'].includes(command)) throw new UsageError(`unknown command ${JSON.stringify(command)}: expected add, remove or list`)
  if (extra.length > 0 || (command === 'list' && name !== undefined)) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0] ?? name)}`)
  if (!file) throw new UsageError('no users file: pass --file or set MQFN_USERS_FILE')
  try {
    const users = new Map(readUsers(file))
    switch (command) {
      case 'list':
        for (const user of [...users.keys()].sort()) console.log(user)
        return 0
      case 'add': {
        if (!name || !/^[^\s\u0000-\u001f]+$/u.test(name)) throw new UsageError('give a user name without spaces or control characters', 'user add')
        if (password === undefined) password = await readLine(fromStdin || !process.stdin.isTTY ? undefined : `password for ${name}: `)
        if (password.length === 0) throw new UsageError('the password is empty', 'user add')
        const existed = users.has(name)
        users.set(name, { password: await hashPassword(password) })
        writeUsers(file, users)
        console.log(`${existed ? 'changed the password of' : 'added'} ${name} in ${file}`)
        return 0
      }
      case 'remove':
        if (!name) throw new UsageError('give the user name', 'user remove')
        if (!users.delete(name)) {
          process.stderr.write(`mqfn user remove: no user "${name}" in ${file}\n`)
          return 1
        }
        writeUsers(file, users)
        console.log(`removed ${name} from ${file}`)
        return 0
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`)
    }
  } catch (err) {
    if (err instanceof UsageError) throw err
    process.stderr.write(`mqfn user: ${errorMessage(err)}\n`)
    return 1
  }
}
