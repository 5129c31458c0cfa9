import Foundation
import SQLKit
import TidingsDomain

/// A row of the durable queue.
public struct Job: Sendable, Equatable {
    public var id: String
    public var workspaceId: String
    public var kind: String
    /// What the job is about, e.g. a message id.
    public var subjectId: String
    /// Claims so far, this one included.
    public var attempts: Int
}

/// The durable queue. Jobs are rows written in the same transaction as what they are about;
/// a worker claims due rows with a lease (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so workers
/// never wait on each other; SQLite has a single writer) and extends it while it works. A
/// lease that runs out — its worker died — makes the row claimable again. Claims span
/// workspaces, so they run in the instance scope.
public struct JobRepository: Sendable {
    let db: any SQLDatabase

    public init(_ db: any SQLDatabase) {
        self.db = db
    }

    public func enqueue(_ jobs: [(id: String, workspaceId: String, kind: String, subjectId: String, runAt: Date)], at now: Date) async throws {
        guard !jobs.isEmpty else { return }
        let created = Timestamp.format(now)
        if jobs.count > 1, let first = jobs.first,
           jobs.allSatisfy({ $0.workspaceId == first.workspaceId && $0.kind == first.kind && $0.runAt == first.runAt }) {
            // A batch of one kind (an announcement's deliveries): what the jobs share is bound once.
            let rows = jobs.map { job -> SQLQueryString in "(\(bind: job.id), \(bind: job.subjectId))" }
            try await db.raw("""
                INSERT INTO jobs (id, subject_id, workspace_id, kind, run_at, created_at)
                SELECT v.column1, v.column2, \(bind: first.workspaceId), \(bind: first.kind), \(bind: Timestamp.format(first.runAt)), \(bind: created)
                FROM (VALUES \(rows.joined(separator: ", "))) AS v
                """).run()
            return
        }
        let rows = jobs.map { job -> SQLQueryString in
            "(\(bind: job.id), \(bind: job.workspaceId), \(bind: job.kind), \(bind: job.subjectId), \(bind: Timestamp.format(job.runAt)), \(bind: created))"
        }
        try await db.raw("""
            INSERT INTO jobs (id, workspace_id, kind, subject_id, run_at, created_at) VALUES \(rows.joined(separator: ", "))
            """).run()
    }

    /// Enqueues the jobs whose subject has no job of its kind queued yet (a job still queued
    /// for the same subject stays as it is).
    public func enqueueUnlessQueued(_ jobs: [(id: String, workspaceId: String, kind: String, subjectId: String, runAt: Date)], at now: Date) async throws {
        guard !jobs.isEmpty else { return }
        let created = Timestamp.format(now)
        let rows = jobs.map { job -> SQLQueryString in
            "(\(bind: job.id), \(bind: job.workspaceId), \(bind: job.kind), \(bind: job.subjectId), \(bind: Timestamp.format(job.runAt)), \(bind: created))"
        }
        try await db.raw("""
            INSERT INTO jobs (id, workspace_id, kind, subject_id, run_at, created_at) VALUES \(rows.joined(separator: ", "))
            ON CONFLICT DO NOTHING
            """).run()
    }

    /// Leases up to `limit` due jobs of `kinds` to `owner` until `leaseUntil`.
    public func claim(kinds: [String], owner: String, now: Date, leaseUntil: Date, limit: Int) async throws -> [Job] {
        let nowText = Timestamp.format(now)
        let lock: SQLQueryString = db.isSQLite ? "" : " FOR UPDATE SKIP LOCKED"
        return try await db.raw("""
            UPDATE jobs SET lease_owner = \(bind: owner), lease_until = \(bind: Timestamp.format(leaseUntil)), attempts = attempts + 1
            WHERE id IN (
                SELECT id FROM jobs
                WHERE run_at <= \(bind: nowText) AND (lease_until IS NULL OR lease_until < \(bind: nowText)) AND kind IN (\(binds: kinds))
                ORDER BY run_at, id LIMIT \(bind: limit)\(lock)
            )
            RETURNING id, workspace_id, kind, subject_id, attempts
            """).all().map { row in
            Job(
                id: try row.decode(column: "id", as: String.self), workspaceId: try row.decode(column: "workspace_id", as: String.self),
                kind: try row.decode(column: "kind", as: String.self), subjectId: try row.decode(column: "subject_id", as: String.self),
                attempts: try row.decode(column: "attempts", as: Int.self)
            )
        }
    }

    /// Keeps the leases of jobs still being worked on.
    public func extendLeases(ids: [String], owner: String, until: Date) async throws {
        guard !ids.isEmpty else { return }
        try await db.raw("""
            UPDATE jobs SET lease_until = \(bind: Timestamp.format(until)) WHERE lease_owner = \(bind: owner) AND id IN (\(binds: ids))
            """).run()
    }

    /// Runs the job again at `runAt`, unleased.
    public func reschedule(id: String, runAt: Date) async throws {
        try await db.raw("""
            UPDATE jobs SET run_at = \(bind: Timestamp.format(runAt)), lease_owner = NULL, lease_until = NULL WHERE id = \(bind: id)
            """).run()
    }

    /// Makes the job about `subjectId` due at `runAt`, leaving any lease alone; returns
    /// whether there was such a job.
    public func reschedule(kind: String, subjectId: String, runAt: Date) async throws -> Bool {
        try await db.raw("""
            UPDATE jobs SET run_at = \(bind: Timestamp.format(runAt)) WHERE kind = \(bind: kind) AND subject_id = \(bind: subjectId) RETURNING id
            """).first() != nil
    }

    public func complete(ids: [String]) async throws {
        guard !ids.isEmpty else { return }
        try await db.raw("DELETE FROM jobs WHERE id IN (\(binds: ids))").run()
    }

    /// Removes the job about `subjectId` unless a worker holds it; returns whether it did.
    public func removeUnleased(kind: String, subjectId: String, now: Date) async throws -> Bool {
        try await db.raw("""
            DELETE FROM jobs WHERE kind = \(bind: kind) AND subject_id = \(bind: subjectId)
                AND (lease_until IS NULL OR lease_until < \(bind: Timestamp.format(now)))
            RETURNING id
            """).first() != nil
    }

    /// Whether a worker holds the job about `subjectId` right now.
    public func isLeased(kind: String, subjectId: String, now: Date) async throws -> Bool {
        try await db.raw("""
            SELECT 1 AS leased FROM jobs WHERE kind = \(bind: kind) AND subject_id = \(bind: subjectId)
                AND lease_until IS NOT NULL AND lease_until >= \(bind: Timestamp.format(now))
            """).first() != nil
    }

    /// When the next job of `kinds` falls due, if any is waiting.
    public func nextRunAt(kinds: [String]) async throws -> Date? {
        try await db.raw("""
            SELECT MIN(run_at) AS next FROM jobs WHERE kind IN (\(binds: kinds)) AND lease_owner IS NULL
            """).first()?.decode(column: "next", as: String?.self).flatMap(Timestamp.parse)
    }
}
