import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createSecureContext } from 'node:tls'
import { errorMessage, mqfnError, type MqfnError } from '../../common/errors.ts'
import { BROKER_ENV, type BrokerConfig } from '../config.ts'

/*
 * The broker's TLS settings, checked, and the PEM files they name, read and
 * validated: once at start-up (a bad file stops the broker) and again on every
 * change of a file (a bad file is logged and the previous context stays).
 */

export type TlsSettings = Pick<BrokerConfig, 'tlsCert' | 'tlsKey' | 'tlsCa' | 'tlsClientCerts' | 'tlsCnAsUsername'>

/** Paths of the files a TLS listener serves. */
export interface TlsFiles {
  cert: string
  key: string
  /** Only when client certificates are requested: the CA they must chain to. */
  ca?: string | undefined
}

/** What the files held, as tls.createServer / setSecureContext take it. */
export interface TlsMaterial {
  cert: string
  key: string
  ca?: string | undefined
  /** The server certificate, for the logs. */
  subject: string
  serialNumber: string
  validTo: string
}

type TlsKey = 'tlsCert' | 'tlsKey' | 'tlsCa' | 'tlsClientCerts' | 'tlsCnAsUsername'

const named = (key: TlsKey) => `${key} (env ${BROKER_ENV[key]})`

function fileError(key: TlsKey, path: string, detail: string): MqfnError {
  return mqfnError('MQFN_ERR_TLS_FILE', named(key), path, detail)
}

/** Undefined when TLS is not configured; throws MQFN_ERR_TLS_CONFIG for settings that cannot work together. */
export function tlsFilesOf(settings: TlsSettings): TlsFiles | undefined {
  const { tlsCert: cert, tlsKey: key, tlsCa: ca, tlsClientCerts: clientCerts } = settings
  if (cert !== undefined && key === undefined) {
    throw mqfnError('MQFN_ERR_TLS_CONFIG', `${named('tlsCert')} is set (${cert}) but ${named('tlsKey')} is not: set both to serve MQTT over TLS, or neither`)
  }
  if (key !== undefined && cert === undefined) {
    throw mqfnError('MQFN_ERR_TLS_CONFIG', `${named('tlsKey')} is set (${key}) but ${named('tlsCert')} is not: set both to serve MQTT over TLS, or neither`)
  }
  if (cert === undefined || key === undefined) {
    if (clientCerts !== 'off') throw mqfnError('MQFN_ERR_TLS_CONFIG', `${named('tlsClientCerts')} is "${clientCerts}" but TLS is not configured: set ${named('tlsCert')} and ${named('tlsKey')}`)
    if (settings.tlsCnAsUsername) throw mqfnError('MQFN_ERR_TLS_CONFIG', `${named('tlsCnAsUsername')} needs TLS with client certificates: set ${named('tlsCert')}, ${named('tlsKey')}, ${named('tlsCa')} and ${named('tlsClientCerts')}`)
    return undefined
  }
  if (clientCerts !== 'off' && ca === undefined) {
    throw mqfnError('MQFN_ERR_TLS_CONFIG', `${named('tlsClientCerts')} is "${clientCerts}" but ${named('tlsCa')} is not set: client certificates are verified against that CA bundle`)
  }
  if (settings.tlsCnAsUsername && clientCerts === 'off') {
    throw mqfnError('MQFN_ERR_TLS_CONFIG', `${named('tlsCnAsUsername')} needs client certificates: set ${named('tlsClientCerts')} to "optional" or "required", and ${named('tlsCa')}`)
  }
  return { cert, key, ca: clientCerts === 'off' ? undefined : ca }
}

function readText(key: TlsKey, path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (err) {
    throw fileError(key, path, `cannot read it: ${errorMessage(err)}`)
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

function parseCertificates(key: TlsKey, path: string, text: string): X509Certificate[] {
  const blocks = text.match(PEM_CERTIFICATE)
  if (!blocks) throw fileError(key, path, 'not a PEM certificate file (no "-----BEGIN CERTIFICATE-----" block)')
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block)
    } catch (err) {
      throw fileError(key, path, `certificate ${i + 1} is not valid PEM: ${errorMessage(err)}`)
    }
  })
}

function parsePrivateKey(path: string, text: string): KeyObject {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) throw fileError('tlsKey', path, 'not a PEM private key (no "-----BEGIN … PRIVATE KEY-----" block)')
  try {
    return createPrivateKey(text)
  } catch (err) {
    // an encrypted key lands here too: there is no setting for a passphrase
    throw fileError('tlsKey', path, `not a usable PEM private key (encrypted keys are not supported): ${errorMessage(err)}`)
  }
}

/** Reads and checks the files; throws MQFN_ERR_TLS_FILE naming the setting and the file. */
export function readTlsMaterial(files: TlsFiles): TlsMaterial {
  const cert = readText('tlsCert', files.cert)
  const key = readText('tlsKey', files.key)
  const ca = files.ca === undefined ? undefined : readText('tlsCa', files.ca)
  const [leaf] = parseCertificates('tlsCert', files.cert, cert) as [X509Certificate]
  const privateKey = parsePrivateKey(files.key, key)
  if (ca !== undefined) parseCertificates('tlsCa', files.ca as string, ca)
  if (!leaf.checkPrivateKey(privateKey)) {
    throw fileError('tlsKey', files.key, `does not match the certificate in ${named('tlsCert')} ${files.cert} (the first certificate of the file must be the server's own)`)
  }
  try {
    // what OpenSSL itself refuses (a weak key, a broken chain) is caught here, not at the first connection
    createSecureContext({ cert, key, ...(ca !== undefined ? { ca } : {}) })
  } catch (err) {
    throw fileError('tlsCert', files.cert, `OpenSSL refuses it with ${named('tlsKey')} ${files.key}: ${errorMessage(err)}`)
  }
  return { cert, key, ca, subject: leaf.subject.replaceAll('\n', ', '), serialNumber: leaf.serialNumber, validTo: leaf.validTo }
}
