/**
 * Logs a recurring error once, then at most once per interval with how many were
 * left out: BullMQ workers raise an error per retry while Redis is away, and a log
 * line per error buries everything else.
 */
export function throttled(intervalMs: number, write: (suppressed: number, err: unknown) => void): (err: unknown) => void {
  let last = 0
  let suppressed = 0
  return (err) => {
    const now = Date.now()
    if (now - last < intervalMs) {
      suppressed++
      return
    }
    write(suppressed, err)
    last = now
    suppressed = 0
  }
}
