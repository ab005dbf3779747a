import type { IncomingMessage, ServerResponse } from 'node:http'
import { createBullBoard } from '@bull-board/api'
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter'
import { ExpressAdapter } from '@bull-board/express'
import type { Queue } from 'bullmq'
import express from 'express'
import type { AdminRoute } from '../../common/admin-server.ts'

export const QUEUES_PATH = '/dashboard/queues'

/**
 * bull-board under /dashboard/queues: an express 5 app, handed the requests the admin
 * server has already authenticated (its UI's API calls carry the dashboard cookie).
 */
export function bullBoardRoute(queues: readonly Queue[]): AdminRoute {
  const serverAdapter = new ExpressAdapter()
  serverAdapter.setBasePath(QUEUES_PATH)
  createBullBoard({
    queues: queues.map((q) => new BullMQAdapter(q)),
    // @bull-board/express 9.10.1 carries its own copy of @bull-board/api (9.10.1) beside
    // ours (9.10.2); their types differ only in private fields
    serverAdapter: serverAdapter as unknown as Parameters<typeof createBullBoard>[0]['serverAdapter'],
    options: {
      uiConfig: {
        boardTitle: 'mqtt-functions',
        hideDocsLink: true,
        miscLinks: [{ text: 'Dead letters, presence, events', url: '/dashboard' }],
      },
    },
  })
  const app = express()
  app.disable('x-powered-by')
  app.use(QUEUES_PATH, serverAdapter.getRouter() as express.Router)
  const handle = app as unknown as (req: IncomingMessage, res: ServerResponse) => void
  return { prefix: QUEUES_PATH, handle: (req, res) => handle(req, res) }
}
