/** Resolves true when `work` settles within `ms`, false otherwise (the work goes on regardless). */
export function within(ms: number, work: Promise<unknown>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms)
    timer.unref()
  })
  return Promise.race([work.then(() => true, () => true), timeout]).finally(() => clearTimeout(timer))
}
