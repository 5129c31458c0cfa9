import Foundation
import Testing

/// Looks through what a test left in raw storage — the SQLite file with its WAL, or a
/// `pg_dump` of the PostgreSQL database — for anything that should only ever be stored
/// sealed or hashed: email addresses, API keys, webhook secrets, and values a test names.
/// Every test that uses `withTidings` or a `Scratch` is held to it, so a new feature that
/// stores personal data in the clear fails the suite.
enum StorageScan {
    /// What a scan found: where, and the matching text. Email addresses are a local part
    /// and a domain whose last label is letters (with capitals, 12 characters or more); API
    /// keys are `tdg_` and 40 or more letters
    /// and digits. Works on raw bytes (a database page is not valid UTF-8) in one pass per
    /// kind — a regular expression over megabytes of pages took minutes.
    static func findings(in bytes: [UInt8], source: String, needles: [String]) -> [String] {
        var found: [String] = []
        for address in emailAddresses(in: bytes) { found.append("\(source): email address \(address)") }
        for key in apiKeys(in: bytes) { found.append("\(source): API key \(key.prefix(12))…") }
        for secret in webhookSecrets(in: bytes) { found.append("\(source): webhook secret \(secret.prefix(12))…") }
        for needle in needles where contains(bytes, Array(needle.utf8)) { found.append("\(source): test value \(needle)") }
        return found
    }

    static func findings(in text: String, source: String, needles: [String]) -> [String] {
        findings(in: Array(text.utf8), source: source, needles: needles)
    }

    private static func isLocalPart(_ byte: UInt8) -> Bool {
        isAlphanumeric(byte) || "._%+-".utf8.contains(byte)
    }

    private static func isDomainLabel(_ byte: UInt8) -> Bool {
        isAlphanumeric(byte) || byte == UInt8(ascii: "-")
    }

    private static func isLetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        isLetter(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    static func emailAddresses(in bytes: [UInt8]) -> [String] {
        var found: [String] = []
        var index = 0
        while let at = bytes[index...].firstIndex(of: UInt8(ascii: "@")) {
            index = at + 1
            var start = at
            while start > 0, isLocalPart(bytes[start - 1]) { start -= 1 }
            guard start < at else { continue }
            // The domain: labels separated by dots, the last one two or more letters.
            var end = at + 1
            var lastGoodEnd: Int?
            while true {
                var labelEnd = end
                while labelEnd < bytes.count, isDomainLabel(bytes[labelEnd]) { labelEnd += 1 }
                guard labelEnd > end else { break }
                // As a pattern would: a later label counts up to its leading letters, if two or more.
                let letters = bytes[end..<labelEnd].prefix(while: isLetter).count
                if end > at + 1, letters >= 2 { lastGoodEnd = end + letters }
                guard labelEnd < bytes.count, bytes[labelEnd] == UInt8(ascii: "."), labelEnd + 1 < bytes.count else { break }
                end = labelEnd + 1
            }
            guard let lastGoodEnd else { continue }
            // Addresses are stored normalised to lower case. A short match with capitals is
            // random bytes far more often than an address (WAL checksums and salts, hashes:
            // `o@b.evdU` turned up in one); a longer one is still reported.
            let match = bytes[start..<lastGoodEnd]
            if match.contains(where: { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) }) && match.count < 12 { continue }
            found.append(String(decoding: match, as: UTF8.self))
        }
        return found
    }

    /// `whsec_` and 32 or more base64 characters: a webhook signing secret.
    static func webhookSecrets(in bytes: [UInt8]) -> [String] {
        var found: [String] = []
        let prefix = Array("whsec_".utf8)
        var index = 0
        while let hit = firstRange(of: prefix, in: bytes, from: index) {
            var end = hit + prefix.count
            while end < bytes.count, isAlphanumeric(bytes[end]) || bytes[end] == UInt8(ascii: "+") || bytes[end] == UInt8(ascii: "/") { end += 1 }
            if end - hit - prefix.count >= 32 { found.append(String(decoding: bytes[hit..<end], as: UTF8.self)) }
            index = hit + 1
        }
        return found
    }

    static func apiKeys(in bytes: [UInt8]) -> [String] {
        var found: [String] = []
        let prefix = Array("tdg_".utf8)
        var index = 0
        while let hit = firstRange(of: prefix, in: bytes, from: index) {
            var end = hit + prefix.count
            while end < bytes.count, isAlphanumeric(bytes[end]) { end += 1 }
            if end - hit - prefix.count >= 40 { found.append(String(decoding: bytes[hit..<end], as: UTF8.self)) }
            index = hit + 1
        }
        return found
    }

    private static func contains(_ bytes: [UInt8], _ needle: [UInt8]) -> Bool {
        firstRange(of: needle, in: bytes, from: 0) != nil
    }

    private static func firstRange(of needle: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard let first = needle.first, needle.count <= bytes.count else { return nil }
        var index = start
        while index + needle.count <= bytes.count, let candidate = bytes[index...].firstIndex(of: first) {
            guard candidate + needle.count <= bytes.count else { return nil }
            if bytes[candidate..<(candidate + needle.count)].elementsEqual(needle) { return candidate }
            index = candidate + 1
        }
        return nil
    }

    /// The SQLite database files (main, WAL, shared memory) in `directory`.
    static func scanSQLite(in directory: URL, needles: [String]) -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? []
        var found: [String] = []
        for file in files where [".sqlite", ".sqlite-wal", ".sqlite-shm"].contains(where: file.lastPathComponent.hasSuffix) {
            guard let data = try? Data(contentsOf: file) else { continue }
            found += findings(in: [UInt8](data), source: file.lastPathComponent, needles: needles)
        }
        return found
    }

    /// A plain-text `pg_dump` of the database at `url`.
    /// `TIDINGS_TEST_PG_DUMP` (set by scripts/test), else Debian's PostgreSQL 15 path.
    static var pgDump: String {
        ProcessInfo.processInfo.environment["TIDINGS_TEST_PG_DUMP"] ?? "/usr/lib/postgresql/15/bin/pg_dump"
    }

    static func scanPostgres(url: String, needles: [String]) async throws -> [String] {
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
