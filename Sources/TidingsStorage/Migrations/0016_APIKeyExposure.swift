import SQLKit

/// When an API key arrived over plain HTTP, so listings can warn that it must be replaced.
struct APIKeyExposure: Migration {
    let number = 16
    let name = "APIKeyExposure"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        try await execute(["ALTER TABLE api_keys ADD COLUMN exposed_at TEXT"], on: db)
    }
}
