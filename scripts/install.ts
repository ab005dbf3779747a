import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'

/*
 * Runs one of the install scripts (install-services.sh, install-validators.sh) with its
 * output condensed: `go install` and `go mod download` print one `go: downloading …`
 * line per module (59 for FerretDB), which buries the line that matters. Those become a
 * count, redrawn in place on a terminal and printed once at the end otherwise; every
 * other line passes through.
 */
export async function runInstaller(script: string, what: string): Promise<void> {
  const child = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'pipe'] })
  const tty = process.stderr.isTTY === true
  let downloads = 0
  const progress = () => `${what}: ${downloads} Go module${downloads === 1 ? '' : 's'} downloaded`
  const onLine = (line: string) => {
    if (line.startsWith('go: downloading ')) {
      downloads += 1
      if (tty) process.stderr.write(`\r${progress()}`)
      return
    }
    if (tty && downloads > 0) process.stderr.write('\n')
    process.stderr.write(`${line}\n`)
  }
  for (const stream of [child.stdout, child.stderr]) createInterface({ input: stream }).on('line', onLine)
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  if (downloads > 0) process.stderr.write(tty ? '\n' : `${progress()}\n`)
  if (code !== 0) throw new Error(`${what} failed (bash ${script} exited with code ${code})`)
}
