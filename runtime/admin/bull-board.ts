import { createBullBoard } from '@bull-board/api'
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter'
import { ExpressAdapter } from '@bull-board/express'
import type { Queue } from 'bullmq'
import { Router } from 'express'
import type { AdminRoute } from '../../common/admin-server.ts'

export const QUEUES_PATH = '/dashboard/queues'

/**
 * bull-board under /dashboard/queues, mounted on the admin server behind its token
 * (its UI's API calls carry the dashboard cookie). @bull-board/express and
 * @bull-board/api are pinned to the same version: their types are then one.
 */
export function bullBoardRoute(queues: readonly Queue[]): AdminRoute {
  const serverAdapter = new ExpressAdapter()
  serverAdapter.setBasePath(QUEUES_PATH)
  createBullBoard({
    queues: queues.map((q) => new BullMQAdapter(q)),
    serverAdapter,
    options: {
      uiConfig: {
        boardTitle: 'mqtt-functions',
        hideDocsLink: true,
        miscLinks: [{ text: 'Dead letters, presence, events', url: '/dashboard' }],
      },
    },
  })
  return { prefix: QUEUES_PATH, router: Router().use(serverAdapter.getRouter()) }
}
