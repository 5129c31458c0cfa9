import Synchronization

/// Group commit: writes submitted while one transaction is committing are gathered
/// and committed together in the next one.
///
/// SQLite has one writer, so per-request transactions queue behind each other;
/// gathering them turns N transactions into one without adding latency when idle
/// (a lone write commits at once). Every caller still returns only after the
/// transaction holding its write has committed.
///
/// There is no background task: the first caller to find no commit running leads,
/// and when it is done it hands the lead to the oldest waiting caller, which
/// commits everything queued by then (at most `maxBatch` items).
public final class GroupCommitter<Item: Sendable, Output: Sendable>: Sendable {
    private enum Signal: Sendable {
        case done(Result<Output, any Error>)
        case lead
    }

    private struct Entry: Sendable {
        var id: Int
        var item: Item
        var continuation: CheckedContinuation<Signal, Never>
    }

    private struct State: Sendable {
        var pending: [Entry] = []
        var leaderActive = false
        var nextId = 0
    }

    private let state = Mutex(State())
    private let maxBatch: Int
    private let commit: @Sendable ([Item]) async throws -> [Output]

    /// - Parameter commit: writes the items in one transaction and returns one output per item, in order.
    public init(maxBatch: Int, commit: @escaping @Sendable ([Item]) async throws -> [Output]) {
        precondition(maxBatch > 0)
        self.maxBatch = maxBatch
        self.commit = commit
    }

    /// Returns once `item` has been committed (or its transaction has failed).
    public func submit(_ item: Item) async throws -> Output {
        var id = 0
        let signal = await withCheckedContinuation { (continuation: CheckedContinuation<Signal, Never>) in
            let leads = state.withLock { state -> Bool in
                id = state.nextId
                state.nextId &+= 1
                state.pending.append(Entry(id: id, item: item, continuation: continuation))
                guard !state.leaderActive else { return false }
                state.leaderActive = true
                return true
            }
            if leads { continuation.resume(returning: .lead) }
        }
        switch signal {
        case .done(let result):
            return try result.get()
        case .lead:
            return try await lead(ownId: id).get()
        }
    }

    /// Commits `items` together; if that transaction fails, commits each alone, so one
    /// item that cannot be written (or a conflict with another instance) fails only its caller.
    private func commitIsolatingFailures(_ items: [Item]) async -> [Result<Output, any Error>] {
        do {
            let outputs = try await commit(items)
            precondition(outputs.count == items.count, "commit must return one output per item")
            return outputs.map { .success($0) }
        } catch {
            guard items.count > 1 else { return [.failure(error)] }
        }
        var results: [Result<Output, any Error>] = []
        for item in items {
            do {
                results.append(.success(try await commit([item])[0]))
            } catch {
                results.append(.failure(error))
            }
        }
        return results
    }

    /// Commits the oldest queued items (the leader's own is first), answers their callers,
    /// and passes the lead on if more are waiting.
    private func lead(ownId: Int) async -> Result<Output, any Error> {
        let batch = state.withLock { state in
            let count = min(maxBatch, state.pending.count)
            let batch = Array(state.pending.prefix(count))
            state.pending.removeFirst(count)
            return batch
        }
        let outcome = await commitIsolatingFailures(batch.map(\.item))
        var own: Result<Output, any Error>?
        for (index, entry) in batch.enumerated() {
            let result = outcome[index]
            if entry.id == ownId {
                own = result
            } else {
                entry.continuation.resume(returning: .done(result))
            }
        }
        // The next leader stays queued; it takes itself with the next batch.
        let next = state.withLock { state -> Entry? in
            if let first = state.pending.first { return first }
            state.leaderActive = false
            return nil
        }
        next?.continuation.resume(returning: .lead)
        guard let own else { preconditionFailure("the leader's own item is always in its batch") }
        return own
    }
}
