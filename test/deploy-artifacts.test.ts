import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { cp, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { Queue } from 'bullmq'
import { MongoClient } from 'mongodb'
import { parse as parseYaml, parseAllDocuments } from 'yaml'
import { loadBrokerConfig } from '../broker/config.ts'
import { parseAcl } from '../broker/security/acl.ts'
import { readUsers } from '../broker/security/users-file.ts'
import { readStructuredFile } from '../broker/security/watched-file.ts'
import { EVENT_TYPES } from '../common/event-types.ts'
import { queueName } from '../common/queues.ts'
import { createRedis } from '../common/redis.ts'
import { composeValidator, manifestValidator } from '../deploy/schemas/validate.ts'
import { loadWorkerConfig } from '../runtime/config.ts'
import { PREBUILT_MANIFEST } from '../runtime/load.ts'
import { buildMain } from '../cli/build.ts'
import { findGoTool, freePort } from '../scripts/services.ts'
import { ready, spawnCaptured, type MqfnProcess } from './helpers/processes.ts'
import { functionsDir, loadIsolated, ROOT, services, unique, waitFor } from './helpers/stack.ts'

/* Everything under deploy/, checked offline: no Docker engine or cluster is needed. */

const DEPLOY = join(ROOT, 'deploy')
// parsed YAML: each field used is asserted on, so loose typing stays inside this file
type Obj = Record<string, any>

function kustomize(dir: string): Obj[] {
  // npm test installs it (scripts/install-validators.sh) before running this file
  const bin = findGoTool('kustomize')
  assert.ok(bin, 'kustomize is not installed: run this file through npm test, or scripts/install-validators.sh')
  const out = execFileSync(bin, ['build', join(DEPLOY, 'k8s', dir)], { encoding: 'utf8' })
  return parseAllDocuments(out).map((d) => d.toJS() as Obj)
}

const find = (docs: Obj[], kind: string, name: string): Obj => {
  const doc = docs.find((d) => d.kind === kind && d.metadata.name.startsWith(name))
  assert.ok(doc, `no ${kind} ${name}`)
  return doc
}

/** The environment a container gets from its envFrom ConfigMap and Secret. */
function containerEnv(docs: Obj[], container: Obj): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const from of container.envFrom as Obj[]) {
    if (from.configMapRef) Object.assign(env, find(docs, 'ConfigMap', from.configMapRef.name).data)
    if (from.secretRef) Object.assign(env, find(docs, 'Secret', from.secretRef.name).stringData)
  }
  return env
}

interface Dockerfile { stages: { name?: string; lines: [string, string][] }[] }

/** Enough of the Dockerfile grammar for deploy/Dockerfile: instructions, continuations, stages. */
function parseDockerfile(text: string): Dockerfile {
  const stages: Dockerfile['stages'] = []
  for (const line of text.replace(/\\\n/g, ' ').split('\n')) {
    const m = /^([A-Z]+)\s+(.*)$/.exec(line.trim())
    if (!m || line.trim().startsWith('#')) continue
    const [, op, rest] = m as unknown as [string, string, string]
    if (op === 'FROM') stages.push({ ...(/ AS (\S+)/i.exec(rest) ? { name: /AS (\S+)/i.exec(rest)?.[1] as string } : {}), lines: [] })
    else stages.at(-1)?.lines.push([op, rest])
  }
  return { stages }
}

const dockerfile = parseDockerfile(readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8'))
const runtimeStage = dockerfile.stages.at(-1) as Dockerfile['stages'][number]
const instr = (op: string) => runtimeStage.lines.filter(([o]) => o === op).map(([, rest]) => rest)
const imageEnv: Record<string, string> = Object.fromEntries(instr('ENV').flatMap((r) => r.split(/\s+/).map((kv) => kv.split('=') as [string, string])))

test('every YAML file under deploy/k8s parses', () => {
  const files = readdirSync(join(DEPLOY, 'k8s'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.yaml'))
  assert.ok(files.length >= 10, `found ${files.length} files`)
  for (const f of files) {
    for (const doc of parseAllDocuments(readFileSync(join(DEPLOY, 'k8s', f), 'utf8'))) assert.deepEqual(doc.errors, [], f)
  }
})

test('kustomize build of the base and both overlays validates against Kubernetes 1.34 and KEDA schemas', () => {
  const validate = manifestValidator()
  const base = ['ConfigMap', 'ConfigMap', 'Deployment', 'Deployment', 'PodDisruptionBudget', 'Secret', 'Secret', 'Service']
  for (const [dir, kinds] of [['base', base], ['overlays/keda', [...base, 'ScaledObject']], ['overlays/hpa', [...base, 'HorizontalPodAutoscaler']]] as const) {
    const docs = kustomize(dir)
    assert.deepEqual(docs.map((d) => d.kind).sort(), [...kinds].sort(), dir)
    for (const doc of docs) assert.deepEqual(validate(doc), [], `${dir}: ${doc.kind} ${doc.metadata.name}`)
  }
  // the validator is not vacuous: a misspelt field and a trigger without a type are refused
  const worker = find(kustomize('base'), 'Deployment', 'mqfn-worker')
  worker.spec.template.spec.terminationGracePeriod = 40
  assert.deepEqual(validate(worker), ['apps/v1/Deployment /spec/template/spec must NOT have additional properties (terminationGracePeriod)'])
  const scaled = find(kustomize('overlays/keda'), 'ScaledObject', 'mqfn-worker')
  delete scaled.spec.triggers[0].type
  assert.deepEqual(validate(scaled), ["keda.sh/v1alpha1/ScaledObject /spec/triggers/0 must have required property 'type'"])
})

test('the manifests keep the promises: grace periods, probes on the admin port, non-root, prebuilt handlers', () => {
  const docs = kustomize('overlays/keda')
  const user = /^(\d+):(\d+)$/.exec(instr('USER')[0] ?? '')
  assert.ok(user && Number(user[1]) > 0, `the image's USER is numeric and not root: ${instr('USER')[0]}`)
  for (const name of ['mqfn-broker', 'mqfn-worker']) {
    const pod = find(docs, 'Deployment', name).spec.template.spec
    const [container] = pod.containers as Obj[]
    const env = containerEnv(docs, container as Obj)
    const config = name === 'mqfn-broker' ? loadBrokerConfig({ env }) : loadWorkerConfig({ env })
    const graceMs = pod.terminationGracePeriodSeconds * 1000
    if ('drainTimeoutMs' in config) assert.ok(graceMs > config.drainTimeoutMs, `${name}: grace ${graceMs} ms > drain ${config.drainTimeoutMs} ms`)
    else assert.ok(graceMs > config.shutdownFlushTimeoutMs, `${name}: grace ${graceMs} ms > flush ${config.shutdownFlushTimeoutMs} ms`)
    const admin = (container?.ports as Obj[]).find((p) => p.name === 'admin')
    assert.equal(admin?.containerPort, config.adminPort, `${name}: the admin port is the one the process serves`)
    assert.equal(config.adminHost, '0.0.0.0', `${name}: the kubelet reaches the admin server`)
    for (const [probe, path] of [['startupProbe', '/healthz'], ['livenessProbe', '/healthz'], ['readinessProbe', '/readyz']]) {
      assert.deepEqual(container?.[probe as string].httpGet, { path, port: 'admin' }, `${name} ${probe}`)
    }
    assert.equal(pod.securityContext.runAsNonRoot, true)
    assert.equal(pod.securityContext.runAsUser, Number(user[1]))
    assert.deepEqual(container?.securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } })
    assert.ok(container?.resources.requests.cpu && container.resources.limits.memory, `${name}: requests and limits`)
    if ('functionsDir' in config) {
      // a read-only root works only because the worker loads what the image's `mqfn build` wrote
      assert.equal(config.functionsDir, imageEnv.MQFN_FUNCTIONS_DIR)
      assert.match(dockerfile.stages[0]?.lines.map(([, r]) => r).join('\n') ?? '', new RegExp(`mqfn\\.js build --out ${config.functionsDir}\\b`))
    } else {
      assert.equal(config.auth, 'required')
      const service = find(docs, 'Service', 'mqfn-broker').spec
      const byName = new Map((container?.ports as Obj[]).map((p) => [p.name, p.containerPort]))
      assert.deepEqual(service.ports.map((p: Obj) => [p.port, byName.get(p.targetPort)]), [[1883, config.mqttPort], [8883, config.tlsPort], [8080, config.wsPort], [9090, config.adminPort]])
      assert.deepEqual(find(docs, 'PodDisruptionBudget', 'mqfn-broker').spec.selector.matchLabels, find(docs, 'Deployment', name).spec.selector.matchLabels)
    }
  }
  // the auth files the manifests and compose mount are valid for the broker's own parsers
  for (const dir of [join(DEPLOY, 'k8s', 'base'), join(DEPLOY, 'auth')]) {
    assert.equal(readUsers(join(dir, 'users.yaml')).size, 0)
    assert.equal(parseAcl(readStructuredFile(join(dir, 'acl.yaml')), 'acl.yaml').rules.length, 2)
  }
})

test('KEDA watches exactly the wait lists BullMQ fills, and the autoscalers own the worker replica count', async (t) => {
  const docs = kustomize('overlays/keda')
  const worker = find(docs, 'Deployment', 'mqfn-worker')
  const env = containerEnv(docs, worker.spec.template.spec.containers[0])
  const prefix = loadWorkerConfig({ env }).prefix
  assert.equal(prefix, '{mqfn}')
  const scaled = find(docs, 'ScaledObject', 'mqfn-worker').spec
  const redis = createRedis((await services()).redisUrl, 'deploy-artifacts-test')
  const queues = EVENT_TYPES.map((type) => new Queue(queueName(type), { connection: redis, prefix }))
  assert.deepEqual(scaled.triggers.map((tr: Obj) => tr.metadata.listName).sort(), queues.map((q) => q.keys.wait).sort())
  await Promise.all(queues.map((q) => q.close()))
  for (const tr of scaled.triggers as Obj[]) {
    assert.equal(tr.type, 'redis')
    assert.ok(env[tr.metadata.addressFromEnv] !== undefined && env[tr.metadata.passwordFromEnv] !== undefined, 'KEDA reads address and password from the worker env')
  }
  assert.equal(scaled.scaleTargetRef.name, worker.metadata.name)
  assert.ok(scaled.minReplicaCount >= 1, 'never 0: delayed retries are promoted by a running worker')
  // and BullMQ's `wait` is a list a new job lands in (KEDA's scaler LLENs it)
  const queue = new Queue('published', { connection: redis, prefix: `{${unique('keda')}}` })
  t.after(async () => {
    await queue.obliterate({ force: true })
    await queue.close()
    redis.disconnect()
  })
  await queue.add('batch', { v: 1, events: [] })
  const wait = queue.keys.wait as string
  assert.equal(await redis.type(wait), 'list')
  assert.equal(await redis.llen(wait), 1)
  assert.equal(worker.spec.replicas, undefined, 'keda overlay: no replicas on the worker')
  const hpaDocs = kustomize('overlays/hpa')
  assert.equal(find(hpaDocs, 'Deployment', 'mqfn-worker').spec.replicas, undefined, 'hpa overlay: no replicas on the worker')
  assert.deepEqual(find(hpaDocs, 'HorizontalPodAutoscaler', 'mqfn-worker').spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'mqfn-worker' })
})

test('deploy/compose.yaml validates against the compose-spec schema and keeps its promises', () => {
  const validate = composeValidator()
  // compose resolves YAML merge keys before it validates; so does this
  const doc = parseYaml(readFileSync(join(DEPLOY, 'compose.yaml'), 'utf8'), { merge: true }) as Obj
  assert.deepEqual(validate(doc), [])
  assert.deepEqual(validate({ ...doc, services: { ...doc.services, worker: { ...doc.services.worker, replica: 2 } } }), ['/services/worker must NOT have unevaluated properties (replica)'])
  const { redis, broker, worker } = doc.services
  assert.equal(redis.command.join(' '), 'redis-server --appendonly yes --appendfsync everysec --maxmemory-policy noeviction')
  assert.equal(worker.deploy.replicas, 2)
  const envOf = (s: Obj): NodeJS.ProcessEnv => Object.fromEntries(Object.entries(s.environment as Record<string, string>).map(([k, v]) => [k, /^\$\{\w+:-\}$/.test(v) ? '' : String(v)]))
  const brokerConfig = loadBrokerConfig({ env: envOf(broker) })
  const workerConfig = loadWorkerConfig({ env: envOf(worker) })
  assert.equal(brokerConfig.auth, 'required')
  for (const file of [brokerConfig.usersFile, brokerConfig.aclFile]) {
    const mount = (broker.volumes as Obj[]).find((v) => file?.startsWith(`${v.target}/`))
    assert.ok(mount && existsSync(join(DEPLOY, mount.source, (file as string).slice(mount.target.length))), `${file} is mounted from deploy/`)
  }
  assert.deepEqual(broker.ports, ['1883:1883', '8883:8883', '8080:8080', '127.0.0.1:9090:9090'])
  assert.match(broker.healthcheck.test.join(' '), new RegExp(`127\\.0\\.0\\.1:${brokerConfig.adminPort}/healthz`))
  assert.match(worker.healthcheck.test.join(' '), new RegExp(`127\\.0\\.0\\.1:${workerConfig.adminPort}/healthz`))
  assert.ok(Number.parseInt(broker.stop_grace_period) * 1000 > brokerConfig.shutdownFlushTimeoutMs)
  assert.ok(Number.parseInt(worker.stop_grace_period) * 1000 > workerConfig.drainTimeoutMs)
})

function start(t: TestContext, cwd: string, args: string[], env: NodeJS.ProcessEnv): MqfnProcess {
  return spawnCaptured(t, args, { cwd, env: { PATH: process.env.PATH, ...env } })
}

/** `npm prune --omit=dev` then `rm -rf <removed>`: symlinks to the production packages of package-lock.json. */
async function productionModules(to: string, removed: string[]): Promise<void> {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> }
  for (const [path, info] of Object.entries(lock.packages)) {
    const name = path.replace(/^node_modules\//, '')
    if (!path.startsWith('node_modules/') || name.includes('node_modules/') || info.dev || removed.some((r) => path === r || path.startsWith(`${r}/`))) continue
    await mkdir(dirname(join(to, name)), { recursive: true })
    await symlink(join(ROOT, 'node_modules', name), join(to, name))
  }
}

test("the image's own commands prebuild the handlers; broker and worker run from the result and exit 0 on SIGTERM", async (t) => {
  const tmp = await mkdtemp(join(tmpdir(), 'mqfn-image-'))
  t.after(() => rm(tmp, { recursive: true, force: true }))
  const [build] = dockerfile.stages
  assert.equal(build?.name, 'build')
  // build stage: the context minus Dockerfile.dockerignore, node_modules standing for `npm ci`
  const ignored = readFileSync(join(DEPLOY, 'Dockerfile.dockerignore'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'))
  const ctx = join(tmp, 'build')
  await cp(ROOT, ctx, { recursive: true, filter: (src) => !ignored.some((p) => src === join(ROOT, p) || (p.startsWith('*') && src.endsWith(p.slice(1)))) })
  await symlink(join(ROOT, 'node_modules'), join(ctx, 'node_modules'))
  const emulated: string[] = []
  for (const command of build.lines.filter(([op]) => op === 'RUN').flatMap(([, r]) => r.split(' && '))) {
    if (/^(npm ci|npm prune|rm -rf node_modules\/)/.test(command)) emulated.push(command)
    else execFileSync('sh', ['-c', command], { cwd: ctx, stdio: 'pipe' })
  }
  assert.deepEqual(emulated, ['npm ci --ignore-scripts --no-audit --no-fund', 'npm prune --omit=dev --ignore-scripts --no-audit --no-fund', 'rm -rf node_modules/esbuild node_modules/@esbuild'])
  // runtime stage: its COPY --from=build lines, production packages without esbuild
  const app = join(tmp, 'app')
  await mkdir(app)
  for (const rest of instr('COPY')) {
    const [, src, dest] = /^--from=build \/app\/(\S+) (\S+)$/.exec(rest) ?? assert.fail(`unexpected COPY ${rest}`)
    if (src === 'node_modules') await productionModules(join(app, dest as string), (emulated[2] as string).split(' ').slice(2))
    else await cp(join(ctx, src as string), join(app, dest === './' ? (src as string) : (dest as string)), { recursive: true })
  }
  assert.deepEqual((await readdir(app)).sort(), ['dist', 'node_modules', 'package.json'])
  assert.equal(existsSync(join(app, 'node_modules', 'esbuild')), false)
  const manifest = JSON.parse(readFileSync(join(app, imageEnv.MQFN_FUNCTIONS_DIR as string, PREBUILT_MANIFEST), 'utf8')) as { handlers: { name: string }[] }
  assert.deepEqual(manifest.handlers.map((h) => h.name), ['published', 'published/ping'])

  const entry = JSON.parse(instr('ENTRYPOINT')[0] as string) as string[]
  const cmd = JSON.parse(instr('CMD')[0] as string) as string[]
  assert.deepEqual([entry, cmd], [['node', 'dist/mqfn.js'], ['broker']])
  const args = (command: string) => [...entry.slice(1), command]
  // users and ACL as compose mounts them; the ACL lets device-1 publish under sensors/device-1/
  const auth = join(tmp, 'auth')
  await cp(join(DEPLOY, 'auth'), auth, { recursive: true })
  execFileSync(process.execPath, [...args('user'), 'add', 'device-1', '--password', 'pw-of-device-1', '--file', join(auth, 'users.yaml')], { cwd: app, env: { PATH: process.env.PATH, ...imageEnv } })
  const svc = await services()
  const database = unique('image').replace('-', '_')
  const mqttPort = await freePort()
  const common = { ...imageEnv, REDIS_URL: svc.redisUrl, MQFN_PREFIX: `{${unique('img')}}`, MQFN_ADMIN_PORT: '0', MQFN_LOG_LEVEL: 'info' }
  const broker = start(t, app, args(cmd[0] as string), {
    ...common, MQFN_HOST: '127.0.0.1', MQFN_MQTT_PORT: String(mqttPort), MQFN_WS_ENABLED: 'false',
    MQFN_AUTH: 'required', MQFN_USERS_FILE: join(auth, 'users.yaml'), MQFN_ACL_FILE: join(auth, 'acl.yaml'),
  })
  const worker = start(t, app, args('worker'), { ...common, MONGO_URL: svc.mongoUrl, MQFN_DATABASE: database })
  await ready(broker, 'broker ready', 60_000)
  await ready(worker, 'worker ready', 60_000)
  assert.match(worker.output(), /"handler":"published".*"path":"functions\/published\.ts"/)

  execFileSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(mqttPort), '-i', 'device-1', '-u', 'device-1', '-P', 'pw-of-device-1', '-q', '1', '-t', 'sensors/device-1/temp', '-m', '21.5'])
  const mongo = await MongoClient.connect(svc.mongoUrl)
  t.after(async () => {
    await mongo.db(database).dropDatabase().catch(() => {})
    await mongo.close()
  })
  const readings = mongo.db(database).collection('readings')
  const [doc] = await waitFor('the reading', async () => { const d = await readings.find().toArray(); return d.length > 0 && d }, 60_000, 250)
  assert.deepEqual({ ...doc, _id: undefined, at: undefined }, { _id: undefined, at: undefined, topic: 'sensors/device-1/temp', room: 'device-1', quantity: 'temp', value: 21.5, raw: '21.5', clientId: 'device-1' })
  assert.equal(await readings.countDocuments(), 1)

  broker.kill('SIGTERM')
  worker.kill('SIGTERM')
  assert.deepEqual([await broker.exited(), await worker.exited()], [0, 0], `broker:\n${broker.output()}\nworker:\n${worker.output()}`)
  // the worker compiled nothing: no .mqfn/build anywhere in the image's tree
  assert.deepEqual(readdirSync(app, { recursive: true, encoding: 'utf8' }).filter((p) => p.includes('.mqfn') && !p.startsWith('node_modules')), [])
})

test('a functions directory with a damaged mqfn-build.json stops the worker with a coded error naming the field', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mqfn-prebuilt-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, PREBUILT_MANIFEST), JSON.stringify({ v: 1, handlers: [{ name: 'published', event: 'publish', file: 'published.mjs', source: 'functions/published.ts' }] }))
  await assert.rejects(loadIsolated(dir), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'MQFN_ERR_PREBUILT_MANIFEST')
    assert.match(err.message, /mqfn-build\.json: not a handler build written by mqfn build: handlers\.0\.event: .*Run mqfn build again$/)
    return true
  })
})

test('mqfn build fails on a broken handler and writes nothing; it refuses an output directory it did not write', async () => {
  const dir = await functionsDir({ 'published.ts': 'export default 42\n', 'delivered.ts': "import { defineHandler } from 'mqtt-functions'\nexport default defineHandler('delivered', async () => {})\n" })
  const out = join(dirname(dir), 'out')
  assert.equal(await buildMain(['--functions', dir, '--out', out]), 1)
  assert.equal(existsSync(out), false)
  await mkdir(out)
  await writeFile(join(out, 'notes.txt'), 'mine')
  assert.equal(await buildMain(['--functions', dir, '--out', out]), 2)
  assert.deepEqual(readdirSync(out), ['notes.txt'])
  await rm(join(dir, 'published.ts'))
  await rm(out, { recursive: true })
  assert.equal(await buildMain(['--functions', dir, '--out', out]), 0)
  assert.deepEqual(readdirSync(out).sort(), ['delivered.mjs', PREBUILT_MANIFEST])
  const built = await loadIsolated(out)
  await built.dispose()
  assert.deepEqual(built.handlers.map((h) => [h.name, h.path]), [['delivered', `${dir.slice(ROOT.length + 1)}/delivered.ts`]])
})
