import assert from 'node:assert/strict'
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { pathToFileURL } from 'node:url'
import pino from 'pino'
import ts from 'typescript'
import type { Handler, HandlerContext } from '../runtime/api.ts'
import { createIdGenerator } from '../common/ids.ts'
import { ROOT, services, unique } from './helpers/stack.ts'

/*
 * Every ```ts block of README.md and docs/*.md is compiled against the public API
 * (runtime/api.ts, as `mqtt-functions`) with the project's compiler options: the code a
 * reader copies must build. A block shows a fragment when it leaves out its imports; the
 * names the docs use without importing (defineHandler, z, …) are imported for it.
 * Pseudo-code belongs in a ```text block.
 */

interface Block { readonly source: string; readonly line: number; readonly code: string }

const PRELUDE: Record<string, string> = {
  defineHandler: "import { defineHandler } from 'mqtt-functions'",
  isDuplicateKey: "import { isDuplicateKey } from 'mqtt-functions'",
  HandlerConfig: "import type { HandlerConfig } from 'mqtt-functions'",
  z: "import { z } from 'zod'",
}

async function documentationBlocks(): Promise<Block[]> {
  const files = ['README.md', ...(await readdir(join(ROOT, 'docs'))).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)]
  const blocks: Block[] = []
  for (const source of files) {
    const text = await readFile(join(ROOT, source), 'utf8')
    for (const m of text.matchAll(/^([ \t]*)```ts\n([\s\S]*?)^\1```[ \t]*$/gm)) {
      const indent = m[1] ?? ''
      const code = (m[2] ?? '').split('\n').map((l) => (l.startsWith(indent) ? l.slice(indent.length) : l)).join('\n')
      blocks.push({ source, line: text.slice(0, m.index).split('\n').length, code })
    }
  }
  return blocks
}

/** The block as a module, with the imports it leaves out. */
function asModule(code: string): string {
  const imported = new Set([...code.matchAll(/^import\s+(?:type\s+)?\{([^}]*)\}|^import\s+(\w+)/gm)]
    .flatMap((m) => (m[1] ?? m[2] ?? '').split(',').map((n) => n.replace(/^\s*type\s+/, '').trim())))
  const missing = Object.keys(PRELUDE).filter((name) => !imported.has(name) && new RegExp(`\\b${name}\\b`).test(code))
  return `${missing.map((n) => PRELUDE[n]).join('\n')}\n${code}\nexport {}\n`
}

/** Compiles the files with tsconfig.json's options; one line per error, naming file and line. */
function typeErrors(files: string[]): string[] {
  const read = ts.readConfigFile(join(ROOT, 'tsconfig.json'), ts.sys.readFile)
  const { options } = ts.parseJsonConfigFileContent(read.config, ts.sys, ROOT)
  const program = ts.createProgram(files, options)
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file && d.start !== undefined ? `${d.file.fileName}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}` : '?'
    return `${where}: TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`
  })
}

async function writeBlocks(t: TestContext, blocks: readonly Block[]): Promise<Map<string, Block>> {
  const dir = join(ROOT, '.mqfn', 'test', unique('doc-code'))
  await mkdir(dir, { recursive: true })
  t.after(() => rm(dir, { recursive: true, force: true }))
  const written = new Map<string, Block>()
  for (const block of blocks) {
    const file = join(dir, `${block.source.replace(/[/.]/g, '_')}-${block.line}.ts`)
    await writeFile(file, asModule(block.code))
    written.set(file, block)
  }
  return written
}

test('every TypeScript block of README.md and docs/*.md compiles against the public API', async (t) => {
  const blocks = await documentationBlocks()
  assert.ok(blocks.length >= 6, `found ${blocks.length} blocks`)
  const written = await writeBlocks(t, blocks)
  const errors = typeErrors([...written.keys()]).map((e) => {
    const file = [...written.keys()].find((f) => e.startsWith(f))
    const block = file ? written.get(file) : undefined
    return block ? `${block.source}, block at line ${block.line}: ${e.slice(file!.length + 1)}` : e
  })
  assert.deepEqual(errors, [])
})

test('the check catches what it is for: an untyped collection given a string _id (TS2322)', async (t) => {
  const [file] = (await writeBlocks(t, [{ source: 'broken', line: 1, code: `export default defineHandler('published', async (event, ctx) => {
  await ctx.db.collection('alerts').insertOne({ _id: event.id })
})` }])).keys()
  const errors = typeErrors([file!])
  assert.equal(errors.length, 1, errors.join('\n'))
  assert.match(errors[0]!, /TS2322/)
})

test('the walkthrough handler and functions/published.ts are idempotent: the same event twice stores one document, no error', async (t) => {
  const { mongoUrl } = await services()
  const db = (await import('mongodb')).MongoClient.connect(mongoUrl).then((c) => {
    t.after(() => c.close())
    return c.db(unique('doccode'))
  })
  const readme = (await documentationBlocks()).find((b) => b.source === 'README.md' && b.code.includes("collection<Alert>('alerts')"))
  assert.ok(readme, 'the walkthrough handler of README step 2')
  const [walkthrough] = (await writeBlocks(t, [readme])).keys()
  const published: string[] = []
  const ctx = async (): Promise<HandlerContext> => ({
    db: await db, log: pino({ level: 'silent' }), attempt: 1, signal: new AbortController().signal, handler: 'doc',
    publish: async (topic) => void published.push(topic),
    reply: async () => void published.push('(reply)'),
  })
  const event = {
    id: createIdGenerator()(), type: 'published' as const, ts: Date.now(), brokerId: 'b', clientId: 'c', epoch: 1, seq: 1, 
    topic: 'sensors/kitchen/temp', payload: Buffer.from('35'), qos: 1 as const, retain: false, dup: false,
  }
  for (const [file, collection] of [[walkthrough!, 'alerts'], [join(ROOT, 'functions', 'published.ts'), 'readings']] as const) {
    const handler = (await import(pathToFileURL(file).href)).default as Handler<'published'>
    // a parsed-payload handler gets event.data from the runtime: given here as the runtime would
    for (let run = 0; run < 2; run++) await handler({ ...event, data: 35 } as never, await ctx())
    assert.equal(await (await db).collection(collection).countDocuments({ _id: event.id as never }), 1, collection)
  }
  assert.deepEqual(published, ['alerts/kitchen', 'alerts/kitchen'])
})
