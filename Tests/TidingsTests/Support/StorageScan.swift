import Foundation
import Testing

/// Looks through what a test left in raw storage — the SQLite file with its WAL, or a
/// `pg_dump` of the PostgreSQL database — for anything that should only ever be stored
/// sealed or hashed: email addresses, API keys, and values a test names. Every test that
/// uses `withTidings` or a `Scratch` is held to it, so a new feature that stores personal
/// data in the clear fails the suite.
enum StorageScan {
    /// Any email address: a local part and a domain whose last label is letters.
    nonisolated(unsafe) static let emailPattern = /[A-Za-z0-9._%+\-]+@([A-Za-z0-9\-]+\.)+[A-Za-z]{2,}/
    /// Any API key secret.
    nonisolated(unsafe) static let apiKeyPattern = /tdg_[0-9A-Za-z]{40,}/

    /// What a scan found: where, and the matching text.
    static func findings(in text: String, source: String, needles: [String]) -> [String] {
        var found: [String] = []
        for match in text.matches(of: emailPattern) { found.append("\(source): email address \(match.output.0)") }
        for match in text.matches(of: apiKeyPattern) { found.append("\(source): API key \(match.output.prefix(12))…") }
        for needle in needles where text.contains(needle) { found.append("\(source): test value \(needle)") }
        return found
    }

    /// The SQLite database files (main, WAL, shared memory) in `directory`.
    static func scanSQLite(in directory: URL, needles: [String]) -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? []
        var found: [String] = []
        for file in files where [".sqlite", ".sqlite-wal", ".sqlite-shm"].contains(where: file.lastPathComponent.hasSuffix) {
            guard let data = try? Data(contentsOf: file) else { continue }
            // Raw pages: decode leniently, so text between binary bytes is still searchable.
            let text = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            found += findings(in: text, source: file.lastPathComponent, needles: needles)
        }
        return found
    }

    /// A plain-text `pg_dump` of the database at `url`.
    static func scanPostgres(url: String, needles: [String]) async throws -> [String] {
        let pgDump = ProcessInfo.processInfo.environment["TIDINGS_TEST_PG_DUMP"] ?? "/usr/lib/postgresql/15/bin/pg_dump"
        guard FileManager.default.isExecutableFile(atPath: pgDump) else {
            throw TestBackend.Unavailable(description: "pg_dump not found at \(pgDump); scripts/test sets TIDINGS_TEST_PG_DUMP.")
        }
        let result = try await run(pgDump, ["--no-owner", "--data-only", "--dbname", url])
        guard result.status == 0 else {
            throw TestBackend.Unavailable(description: "pg_dump failed: \(result.stderr.prefix(500))")
        }
        return findings(in: result.stdout, source: "pg_dump", needles: needles)
    }

    /// What the scratch's raw storage holds that it should not: its SQLite files, or a dump of its database.
    static func scan(_ scratch: Scratch, needles: [String] = []) async throws -> [String] {
        if scratch.backend == .sqlite { return scanSQLite(in: scratch.directory, needles: needles) }
        return try await scanPostgres(url: scratch.ownerURL ?? scratch.databaseURL, needles: needles)
    }

    /// Records a test issue for every finding in the scratch's storage.
    static func check(_ scratch: Scratch, needles: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) async {
        do {
            let found = try await scan(scratch, needles: needles)
            for finding in Set(found).sorted().prefix(20) {
                Issue.record("Found in raw storage: \(finding)", sourceLocation: sourceLocation)
            }
        } catch {
            Issue.record("The raw-storage scan could not run: \(error)", sourceLocation: sourceLocation)
        }
    }
}
