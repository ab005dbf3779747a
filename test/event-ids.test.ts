import assert from 'node:assert/strict'
import test from 'node:test'
import { createIdGenerator } from '../common/ids.ts'

test('event ids: fixed format, strictly increasing within a process, distinct across generators', async () => {
  const next = createIdGenerator()
  const other = createIdGenerator()
  const ids: string[] = []
  // long enough to cross several milliseconds, so the cached time part is renewed
  const until = Date.now() + 20
  while (Date.now() < until || ids.length < 50_000) ids.push(next())
  for (const id of ids) assert.match(id, /^[0-9a-z]{9}-[A-Za-z0-9_-]{8}-[0-9a-z]{6}$/)
  for (let i = 1; i < ids.length; i++) assert.ok((ids[i - 1] as string) < (ids[i] as string), `${ids[i - 1]} < ${ids[i]}`)
  assert.equal(new Set(ids.map((id) => id.slice(0, 9))).size > 1, true, 'the time part moved on')
  const first = ids[0] as string
  assert.equal(first.slice(-6), '000001')
  const theirs = other()
  assert.notEqual(theirs.slice(10, 18), first.slice(10, 18), 'each generator has its own instance tag')
  await new Promise((r) => setTimeout(r, 2))
  const t0 = Date.now()
  const later = next()
  assert.ok(parseInt(later.slice(0, 9), 36) >= t0 - 1, 'the time part is the capture time in ms')
})
