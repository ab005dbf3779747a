import { createInterface } from 'node:readline'
import { errorMessage } from '../common/errors.ts'
import { hashPassword } from '../broker/security/password-hash.ts'
import { readUsers, writeUsers } from '../broker/security/users-file.ts'

/*
 * `mqfn user add|remove|list`: edits the users file the broker reads (and re-reads
 * on change, so no restart). Only scrypt hashes are written.
 * Exit status: 0 done, 1 no such user / bad file, 2 usage error.
 */

export const USER_USAGE = `usage: mqfn user <add|remove|list> [name] [--file users.yaml]

  add <name>      add the user or change its password; the password is read from
                  stdin (--password-stdin, or a prompt on a terminal) or given
                  with --password (visible in shell history and ps)
  remove <name>   remove the user
  list            print the user names

The file is --file or MQFN_USERS_FILE; JSON when it ends in .json, else YAML.
A running broker picks up changes within a second.`

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name)
  if (i === -1) return undefined
  const value = args[i + 1]
  args.splice(i, 2)
  if (value === undefined) throw new Error(`${name} needs a value`)
  return value
}

function readLine(prompt: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const input = process.stdin
    const rl = createInterface({ input, output: prompt ? process.stderr : undefined, terminal: Boolean(prompt) })
    if (prompt) {
      process.stderr.write(prompt)
      // keep the typed password off the screen
      ;(rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = () => {}
    }
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
  const args = [...argv]
  let file: string | undefined
  let password: string | undefined
  let fromStdin = false
  try {
    file = option(args, '--file') ?? process.env.MQFN_USERS_FILE
    password = option(args, '--password')
    const i = args.indexOf('--password-stdin')
    if (i !== -1) {
      fromStdin = true
      args.splice(i, 1)
    }
  } catch (err) {
    process.stderr.write(`mqfn user: ${errorMessage(err)}\n`)
    return 2
  }
  const [command, name, ...extra] = args
  if (!command || command === '--help' || command === '-h') {
    console.log(USER_USAGE)
    return command ? 0 : 2
  }
  if (!file) {
    process.stderr.write('mqfn user: no users file: pass --file or set MQFN_USERS_FILE\n')
    return 2
  }
  const unknown = extra[0] ?? args.find((a) => a.startsWith('--'))
  if (unknown !== undefined) {
    process.stderr.write(`mqfn user: unexpected argument "${unknown}"\n${USER_USAGE}\n`)
    return 2
  }
  try {
    const users = new Map(readUsers(file))
    switch (command) {
      case 'list':
        for (const user of [...users.keys()].sort()) console.log(user)
        return 0
      case 'add': {
        if (!name || !/^[^\s\u0000-\u001f]+$/u.test(name)) {
          process.stderr.write('mqfn user add: give a user name without spaces or control characters\n')
          return 2
        }
        if (password === undefined) password = await readLine(fromStdin || !process.stdin.isTTY ? undefined : `password for ${name}: `)
        if (password.length === 0) {
          process.stderr.write('mqfn user add: the password is empty\n')
          return 2
        }
        const existed = users.has(name)
        users.set(name, { password: await hashPassword(password) })
        writeUsers(file, users)
        console.log(`${existed ? 'changed the password of' : 'added'} ${name} in ${file}`)
        return 0
      }
      case 'remove':
        if (!name) {
          process.stderr.write('mqfn user remove: give the user name\n')
          return 2
        }
        if (!users.delete(name)) {
          process.stderr.write(`mqfn user remove: no user "${name}" in ${file}\n`)
          return 1
        }
        writeUsers(file, users)
        console.log(`removed ${name} from ${file}`)
        return 0
      default:
        process.stderr.write(`mqfn user: unknown command "${command}"\n${USER_USAGE}\n`)
        return 2
    }
  } catch (err) {
    process.stderr.write(`mqfn user: ${errorMessage(err)}\n`)
    return 1
  }
}
