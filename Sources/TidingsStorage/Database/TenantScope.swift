import SQLKit

/// Which workspace's rows a unit of work may touch: PostgreSQL's row-level security
/// policies (migration 10) compare every tenant row with it — a second fence behind the
/// `workspace_id` every repository query binds. SQLite has no row-level security; there
/// the repositories' scoping is the fence.
///
/// The scope travels with the task (`TenantScope.$current`); the database client applies
/// it to each connection it hands out. Work that spans workspaces — recognising an API
/// key, operator commands, background jobs — runs in the instance scope; code inside a
/// transaction that moves between workspaces calls `enter(_:)`.
public enum TenantScope: Sendable, Equatable {
    /// One workspace's rows.
    case workspace(String)
    /// Every row: instance-level work.
    case instance

    /// The scope of the current task; `nil` lets no tenant row through.
    @TaskLocal public static var current: TenantScope?

    /// The value of the `tidings.tenant` setting the policies read.
    var setting: String {
        switch self {
        case .workspace(let id): "ws:" + id
        case .instance: "instance"
        }
    }

    /// Runs `body` with the given scope.
    public static func with<T: Sendable>(_ scope: TenantScope, _ body: () async throws -> T) async rethrows -> T {
        try await $current.withValue(scope) { try await body() }
    }
}

extension SQLDatabase {
    /// Applies `scope` to this connection: on PostgreSQL for the rest of the current
    /// transaction (or, outside one, until the connection is next handed out).
    public func enter(_ scope: TenantScope?) async throws {
        guard !isSQLite else { return }
        try await raw("SELECT set_config('tidings.tenant', \(bind: scope?.setting ?? ""), false)").run()
    }
}
