import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { ERROR_CODES, isMqfnError, mqfnError } from '../common/errors.ts'
import { ROOT } from './helpers/stack.ts'

test('every error code is documented in docs/errors.md, and nothing else is', async () => {
  const doc = await readFile(join(ROOT, 'docs', 'errors.md'), 'utf8')
  const documented = [...doc.matchAll(/^\| `(MQFN_ERR_[A-Z_]+)` \|/gm)].map((m) => m[1])
  assert.deepEqual([...documented].sort(), [...ERROR_CODES].sort())
})

test('coded errors are recognised by name and code, also after crossing a process boundary', () => {
  const err = mqfnError('MQFN_ERR_PUBLISH', 'qos must be 0, 1 or 2, got 3')
  assert.equal(err.message, 'ctx.publish: qos must be 0, 1 or 2, got 3')
  assert.equal(isMqfnError(err, 'MQFN_ERR_PUBLISH'), true)
  const revived = JSON.parse(JSON.stringify({ name: err.name, code: err.code, message: err.message }))
  assert.equal(isMqfnError(revived, 'MQFN_ERR_PUBLISH'), true)
  assert.equal(isMqfnError(new Error('x')), false)
})
