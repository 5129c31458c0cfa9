import SQLKit

/// Each worker claims due jobs of its own kinds. With jobs indexed by time alone, a worker
/// that claims a rare kind (webhooks, automations, a fan-out) read past every due job of
/// the others first: a million queued deliveries made each of its polls a million-row scan.
/// Indexed by (kind, run_at, id), a claim reads only its own kinds' due jobs, in order.
struct IndexJobsByKind: Migration {
    let number = 25
    let name = "IndexJobsByKind"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        try await execute([
            "CREATE INDEX jobs_claim ON jobs (kind, run_at, id)",
            "DROP INDEX jobs_due",
        ], on: db)
    }
}
