import Logging
import Synchronization

/// Runs database clients' connection pools while a command or test works, then stops them,
/// waiting for each at most `stopLimit`.
///
/// PostgresNIO's pool does not always finish stopping when its task is cancelled, and a task
/// group would wait for it forever. The pools therefore run in tasks of their own: one that
/// has not stopped in time is left behind with a warning (its connections are closed with
/// the process), so that a finished command exits and a finished test ends.
public final class PoolRunner: Sendable {
    private let tasks: [Task<Void, Never>]
    private let logger: Logger

    public static let stopLimit: Duration = .seconds(10)

    /// Starts `clients`' pools (clients without one, like SQLite, have nothing to run).
    public init(_ clients: [any DatabaseClient], logger: Logger) {
        self.logger = logger
        tasks = clients.filter { $0.kind == .postgres }.map { client in
            Task { try? await client.run() }
        }
    }

    /// Cancels every pool and waits for each to finish, at most `limit` each.
    public func stop(within limit: Duration = PoolRunner.stopLimit) async {
        for task in tasks { task.cancel() }
        for task in tasks where !(await Self.finishes(task, within: limit)) {
            logger.warning("A database connection pool did not stop within the time limit; leaving it to the process exit")
        }
    }

    /// Whether `task` finishes within `limit`.
    static func finishes(_ task: Task<Void, Never>, within limit: Duration) async -> Bool {
        let resumed = Mutex(false)
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let resumeOnce: @Sendable (Bool) -> Void = { finished in
                let first = resumed.withLock { done in
                    defer { done = true }
                    return !done
                }
                if first { continuation.resume(returning: finished) }
            }
            Task {
                await task.value
                resumeOnce(true)
            }
            Task {
                try? await Task.sleep(for: limit)
                resumeOnce(false)
            }
        }
    }
}
