import Foundation
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// A CSV import of contacts, fed chunk by chunk so a large file is never held in memory.
///
/// The first record is the header: a column named `email` and other columns as
/// attributes (names normalised like JSON keys). Cells are strings unless the
/// caller types a column; ISO-8601 dates become dates, as in JSON; an empty
/// cell leaves the attribute untouched. Valid rows are written in batches of
/// `batchSize`, each batch one transaction; a bad row is reported with its line
/// number and reason and does not stop the import.
public struct ContactImport: Sendable {
    public static let batchSize = 500
    /// Rejected rows listed in the result; the count covers all of them.
    public static let maxReportedErrors = 1000

    public struct RowError: Sendable, Equatable {
        public var line: Int
        public var code: String
        public var message: String
        public var field: String?
    }

    public struct Result: Sendable {
        public var created = 0
        public var updated = 0
        public var rejected = 0
        public var errors: [RowError] = []
        public var errorsTruncated = false
    }

    private struct PendingRow: Sendable {
        var line: Int
        var email: EmailAddress
        var changes: [String: AttributeValue?]
    }

    private let env: ServiceEnvironment
    private let workspaceId: String
    private let actor: AuditActor
    private let columnTypes: [String: AttributeValue.Kind]
    private var reader = CSVRowReader()
    private var header: (emailIndex: Int, names: [String?])?
    private var pending: [PendingRow] = []
    private var result = Result()

    /// - Parameter types: the `types` query parameter, e.g. `plan:string,seats:number,trial_ends:date`.
    public init(_ env: ServiceEnvironment, workspaceId: String, types: String?, by actor: AuditActor) throws(DomainError) {
        self.env = env
        self.workspaceId = workspaceId
        self.actor = actor
        self.columnTypes = try Self.parseTypes(types)
    }

    public mutating func feed(_ bytes: some Sequence<UInt8>) async throws {
        for record in reader.feed(bytes) {
            try await handle(record)
        }
    }

    /// Stops an import whose upload was refused part-way: the complete rows read so far are
    /// written (nothing accepted is dropped) and the counts returned; the unfinished row is not.
    public mutating func abandon() async throws -> Result {
        try await flush()
        try await recordSummary(completed: false)
        return result
    }

    public mutating func finish() async throws -> Result {
        for record in reader.finish() {
            try await handle(record)
        }
        guard header != nil else {
            throw DomainError.invalid("missing_header", "The CSV file is empty; its first line must name the columns, one of them 'email'.")
        }
        try await flush()
        try await recordSummary(completed: true)
        return result
    }

    /// One `contacts.imported` event with the counts (each row's change is audited on its own).
    private func recordSummary(completed: Bool) async throws {
        let audit = try await env.auditRecorder()
        let change = AuditChange("contacts.imported", summary: [
            "created": .number(Double(result.created)), "updated": .number(Double(result.updated)),
            "rejected": .number(Double(result.rejected)), "completed": .bool(completed),
        ])
        try await env.database.transaction { [workspaceId, actor] db in
            try await audit.record(change, in: workspaceId, by: actor, db: db)
        }
    }

    private mutating func handle(_ record: Swift.Result<CSVRow, CSVError>) async throws {
        let row: CSVRow
        switch record {
        case .failure(let error):
            if header == nil {
                throw DomainError.invalid("invalid_csv", "Line \(error.line) (the header): \(error.message).")
            }
            reject(line: error.line, code: "invalid_csv", message: error.message, field: nil)
            return
        case .success(let value):
            row = value
        }
        guard let header else {
            self.header = try Self.readHeader(row, types: columnTypes)
            return
        }
        guard row.fields.count == header.names.count else {
            reject(line: row.line, code: "wrong_field_count",
                   message: "Expected \(header.names.count) fields, found \(row.fields.count).", field: nil)
            return
        }
        do throws(DomainError) {
            let email = try EmailAddress(row.fields[header.emailIndex])
            var changes: [String: AttributeValue?] = [:]
            for (index, cell) in row.fields.enumerated() {
                guard let name = header.names[index], !cell.isEmpty else { continue }
                guard !cell.utf8.contains(0) else {
                    throw .invalid("invalid_character", "Cells must not contain the NUL character (U+0000).", field: name)
                }
                changes[name] = try AttributeValue(text: cell, as: columnTypes[name] ?? .string, field: name)
            }
            pending.append(PendingRow(line: row.line, email: email, changes: changes))
        } catch {
            reject(line: row.line, code: error.code, message: error.message, field: error.field)
        }
        if pending.count >= Self.batchSize {
            try await flush()
        }
    }

    private mutating func flush() async throws {
        guard !pending.isEmpty else { return }
        let now = env.now()
        let vault = try await env.keyring.vault(for: workspaceId)
        let items = pending.map {
            ContactService.PendingUpsert(vault: vault, actor: actor, email: $0.email, changes: $0.changes, now: now)
        }
        let audit = try await env.auditRecorder()
        let lines = pending.map(\.line)
        pending.removeAll(keepingCapacity: true)
        let outcomes = try await env.database.transaction { db in try await ContactService.upsertEach(items, db: db, audit: audit) }
        for (line, outcome) in zip(lines, outcomes) {
            switch outcome {
            case .success(let upserted) where upserted.created: result.created += 1
            case .success: result.updated += 1
            case .failure(let error): reject(line: line, code: error.code, message: error.message, field: error.field)
            }
        }
    }

    private mutating func reject(line: Int, code: String, message: String, field: String?) {
        result.rejected += 1
        if result.errors.count < Self.maxReportedErrors {
            result.errors.append(RowError(line: line, code: code, message: message, field: field))
        } else {
            result.errorsTruncated = true
        }
    }

    static func readHeader(_ row: CSVRow, types: [String: AttributeValue.Kind]) throws(DomainError) -> (emailIndex: Int, names: [String?]) {
        var emailIndex: Int?
        var names: [String?] = []
        var seen = Set<String>()
        for (index, raw) in row.fields.enumerated() {
            let trimmed = raw.trimmingCharacters(in: .whitespaces)
            if trimmed.lowercased() == "email" {
                guard emailIndex == nil else {
                    throw .invalid("invalid_header", "The header names the 'email' column twice.")
                }
                emailIndex = index
                names.append(nil)
                continue
            }
            let name = try AttributeName.normalise(trimmed, field: "header column \(index + 1)")
            guard seen.insert(name).inserted else {
                throw .invalid("invalid_header", "Header columns \(index + 1) and an earlier one both normalise to '\(name)'.")
            }
            names.append(name)
        }
        guard let emailIndex else {
            throw .invalid("missing_email_column", "The header (line \(row.line)) has no column named 'email'.")
        }
        if let unknown = types.keys.sorted().first(where: { !seen.contains($0) }) {
            throw .invalid("invalid_types", "The types parameter names '\(unknown)', which is not a column of this file.", field: "types")
        }
        guard names.count - 1 <= AttributeLimits.maxAttributes else {
            throw .invalid("too_many_attributes", "A contact may have at most \(AttributeLimits.maxAttributes) attributes; the file has \(names.count - 1) attribute columns.")
        }
        return (emailIndex, names)
    }

    static func parseTypes(_ text: String?) throws(DomainError) -> [String: AttributeValue.Kind] {
        guard let text, !text.isEmpty else { return [:] }
        var types: [String: AttributeValue.Kind] = [:]
        for entry in text.split(separator: ",") {
            let parts = entry.split(separator: ":", maxSplits: 1)
            let kinds = AttributeValue.Kind.allCases.map(\.rawValue).joined(separator: ", ")
            guard parts.count == 2, let kind = AttributeValue.Kind(rawValue: parts[1].trimmingCharacters(in: .whitespaces).lowercased()) else {
                throw .invalid("invalid_types", "Each entry of 'types' must be column:type with type one of \(kinds).", field: "types")
            }
            types[try AttributeName.normalise(String(parts[0]), field: "types")] = kind
        }
        return types
    }
}
