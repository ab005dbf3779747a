import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv'
import Ajv2020 from 'ajv/dist/2020.js'
import { VERSIONS } from './generate.ts'

/*
 * Offline validators for deploy/: the schemas generate.ts vendored here, compiled with
 * ajv. Formats are not checked (the Kubernetes ones, int32 or byte, are not JSON
 * Schema formats); types, required fields, enums and unknown fields are.
 */

const here = dirname(fileURLToPath(import.meta.url))

function readJson(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(here, name), 'utf8')) as Record<string, unknown>
}

function describe(errors: ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => {
    const extra = e.keyword === 'additionalProperties' ? e.params.additionalProperty : e.keyword === 'unevaluatedProperties' ? e.params.unevaluatedProperty : undefined
    return `${e.instancePath || '/'} ${e.message ?? 'is invalid'}${extra === undefined ? '' : ` (${String(extra)})`}`
  })
}

export interface ManifestValidator {
  /** Problems of one manifest, empty when it is valid; an unknown apiVersion/kind is a problem. */
  (doc: { apiVersion?: unknown; kind?: unknown }): string[]
}

/** Kubernetes (the kinds generate.ts kept) and KEDA's ScaledObject. */
export function manifestValidator(): ManifestValidator {
  const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false })
  const k8s = readJson(`kubernetes-${VERSIONS.kubernetes}.json`) as { kinds: Record<string, string>; definitions: Record<string, unknown> }
  ajv.addSchema({ definitions: k8s.definitions }, 'k8s')
  const keda = readJson(`keda-${VERSIONS.keda}-scaledobject.json`) as { apiVersion: string; kind: string; schema: Record<string, unknown> }
  const byKind = new Map<string, ValidateFunction>()
  for (const [kind, definition] of Object.entries(k8s.kinds)) byKind.set(kind, ajv.compile({ $ref: `k8s#/definitions/${definition}` }))
  byKind.set(`${keda.apiVersion}/${keda.kind}`, ajv.compile(keda.schema))
  return (doc) => {
    const key = `${String(doc.apiVersion)}/${String(doc.kind)}`
    const validate = byKind.get(key)
    if (!validate) return [`${key}: no schema (known: ${[...byKind.keys()].join(', ')})`]
    return validate(doc) ? [] : describe(validate.errors).map((p) => `${key} ${p}`)
  }
}

/** The compose-spec schema (JSON Schema 2020-12), as compose-go embeds it. */
export function composeValidator(): (doc: unknown) => string[] {
  const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: false })
  const validate = ajv.compile(readJson('compose-spec.json'))
  return (doc) => (validate(doc) ? [] : describe(validate.errors))
}
