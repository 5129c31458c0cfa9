import Foundation
import Synchronization
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// How the automation workers use the queue.
public struct AutomationWorkerSettings: Sendable {
    /// Jobs claimed, and handled side by side, at a time.
    public var batchSize: Int
    /// How long a claimed job stays leased without a heartbeat; a dead worker's jobs are
    /// claimed again after it.
    public var lease: TimeInterval
    /// How often due steps (and other instances' work) are looked for.
    public var pollInterval: Duration

    public init(batchSize: Int = 16, lease: TimeInterval = 60, pollInterval: Duration = .seconds(1)) {
        self.batchSize = batchSize
        self.lease = lease
        self.pollInterval = pollInterval
    }

    /// The wait before claim `attempt + 1` of a job that failed for a fault of our own.
    func backoff(afterAttempt attempt: Int) -> TimeInterval {
        min(3600, 15 * pow(2, Double(max(0, attempt - 1)))) * Double.random(in: 0.8...1.2)
    }
}

/// Claims automation jobs (triggers and steps) from the durable queue and hands them to the
/// ``AutomationEngine``, with leases kept alive while they run. Run by `serve`; drained by
/// hand in tests.
public final class AutomationWorker: Sendable {
    let env: ServiceEnvironment
    let engine: AutomationEngine
    let settings: AutomationWorkerSettings
    /// Woken when a trigger is queued.
    let signal: JobSignal
    /// This worker's name on the leases it holds.
    let owner = Identifier.make("worker")
    private let inFlight = Mutex<Set<String>>([])
    private let stopping = Atomic<Bool>(false)

    public init(_ env: ServiceEnvironment, engine: AutomationEngine, settings: AutomationWorkerSettings, signal: JobSignal) {
        self.env = env
        self.engine = engine
        self.settings = settings
        self.signal = signal
    }

    /// Works until `stop()`; then finishes the jobs in hand.
    public func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { [self] in await heartbeat() }
            while !stopping.load(ordering: .relaxed) {
                var jobs: [Job] = []
                do {
                    jobs = try await claim()
                } catch {
                    env.logger.error("Claiming automation jobs failed", metadata: ["error": "\(error)"])
                }
                if jobs.isEmpty {
                    await signal.wait(timeout: settings.pollInterval)
                } else {
                    await process(jobs)
                }
            }
        }
    }

    public func stop() {
        stopping.store(true, ordering: .relaxed)
        signal.wake()
    }

    /// Handles every job due now, including the ones they queue for now, until none is left;
    /// returns how many were handled. For tests and one-off runs.
    @discardableResult
    public func drain() async throws -> Int {
        var handled = 0
        while true {
            let jobs = try await claim()
            if jobs.isEmpty { return handled }
            await process(jobs)
            handled += jobs.count
        }
    }

    private func claim() async throws -> [Job] {
        let now = env.now()
        let jobs = try await TenantScope.with(.instance) {
            try await env.database.transaction { [owner, settings] db in
                try await JobRepository(db).claim(
                    kinds: AutomationEngine.kinds, owner: owner, now: now, leaseUntil: now.addingTimeInterval(settings.lease), limit: settings.batchSize
                )
            }
        }
        inFlight.withLock { $0.formUnion(jobs.map(\.id)) }
        return jobs
    }

    /// Jobs of a batch are independent (one enrolment has one step queued at a time), so they run side by side.
    private func process(_ jobs: [Job]) async {
        await withDiscardingTaskGroup { group in
            for job in jobs {
                group.addTask { [self] in
                    defer { _ = inFlight.withLock { $0.remove(job.id) } }
                    do {
                        try await engine.run(job)
                    } catch {
                        env.logger.error("An automation job failed; it will be retried", metadata: [
                            "job": "\(job.kind)", "subject": "\(job.subjectId)", "error": "\(error)",
                        ])
                        let retry = env.now().addingTimeInterval(settings.backoff(afterAttempt: job.attempts))
                        try? await TenantScope.with(.instance) {
                            try await env.database.transaction { db in try await JobRepository(db).reschedule(id: job.id, runAt: retry) }
                        }
                    }
                }
            }
        }
    }

    /// Extends the leases of the jobs in hand a third of the lease time before they run out.
    private func heartbeat() async {
        var last = ContinuousClock.now
        while !stopping.load(ordering: .relaxed) || !inFlight.withLock({ $0.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(200))
            guard ContinuousClock.now - last >= .seconds(settings.lease / 3) else { continue }
            last = ContinuousClock.now
            let ids = Array(inFlight.withLock { $0 })
            guard !ids.isEmpty else { continue }
            let until = env.now().addingTimeInterval(settings.lease)
            do {
                try await TenantScope.with(.instance) {
                    try await env.database.transaction { [owner] db in try await JobRepository(db).extendLeases(ids: ids, owner: owner, until: until) }
                }
            } catch {
                env.logger.error("Extending automation leases failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
