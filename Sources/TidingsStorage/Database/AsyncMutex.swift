/// A first-in, first-out mutual exclusion for async code.
///
/// SQLite allows one writer; serialising our own writers here, rather than
/// letting them spin on SQLITE_BUSY, keeps latency predictable under load.
actor AsyncMutex {
    private var locked = false
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var head = 0

    func lock() async {
        if !locked {
            locked = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func unlock() {
        if head < waiters.count {
            let next = waiters[head]
            head += 1
            if head > 64, head * 2 > waiters.count {
                waiters.removeFirst(head)
                head = 0
            }
            next.resume()
        } else {
            locked = false
        }
    }
}
