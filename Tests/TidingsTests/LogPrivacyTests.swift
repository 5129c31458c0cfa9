import Foundation
import Logging
import Synchronization
import Testing
import TidingsApp
import TidingsServices
import TidingsStorage

@Suite("Log privacy")
struct LogPrivacyTests {
    /// Collects log lines in memory.
    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        var all: [String] { lines.withLock { $0 } }
    }

    struct Collecting: LogHandler {
        let sink: Lines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let fields = metadata.merging(event.metadata ?? [:]) { $1 }.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
            sink.lines.withLock { $0.append("\(event.message) \(fields)") }
        }
    }

    @Test("People appear in logs as pseudonyms: stable within a workspace, different across workspaces", arguments: TestBackend.all)
    func pseudonymsInLogs(backend: TestBackend) async throws {
        let sink = Lines()
        let scratch = try await Scratch.make(backend)
        let configuration = try await TidingsConfiguration.load(
            flags: scratch.flags,
            environment: [:]
        )
        var logger = Logger(label: "privacy") { _ in Collecting(sink: sink) }
        logger.logLevel = .trace
        try await TenantScope.with(.instance) { try await Tidings.open(configuration, logger: logger).withDatabase { tidings in
            try await tidings.migrate()
            let a = try await tidings.makeWorkspace(name: "A")
            let b = try await tidings.makeWorkspace(name: "B")
            for workspace in [a, a, b] {
                _ = try await tidings.contacts.upsert(workspaceId: workspace.id, body: ["email": .string("lena.private@example.com")], by: .tester)
            }
            try await tidings.contacts.delete(workspaceId: a.id, email: "lena.private@example.com", by: .tester)
        } }
        await scratch.remove()
        let lines = sink.all
        #expect(!lines.joined().contains("lena.private"))
        func pseudonyms(_ workspace: String) -> Set<String> {
            Set(lines.filter { $0.contains("workspace=\(workspace)") }.compactMap { line in
                line.split(separator: " ").first { $0.hasPrefix("contact=p_") }.map(String.init)
            })
        }
        let contactLines = lines.filter { $0.contains("contact=p_") }
        #expect(contactLines.count == 4, "three upserts and one deletion are logged")
        let workspaces = Set(contactLines.compactMap { $0.split(separator: " ").first { $0.hasPrefix("workspace=") } })
        #expect(workspaces.count == 2)
        let perWorkspace = workspaces.map { pseudonyms(String($0.dropFirst("workspace=".count))) }
        #expect(perWorkspace.allSatisfy { $0.count == 1 }, "one pseudonym per person within a workspace")
        #expect(perWorkspace[0] != perWorkspace[1], "another workspace cannot link the same person")
    }

    @Test("The suite's log scan flags addresses, full IPs, keys and contents, and passes pseudonyms and truncated IPs")
    func logScannerCatchesLeaks() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("log-scan-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/lib/scan_logs.py").path
        func scan(_ text: String) async throws -> Int32 {
            let file = directory.appendingPathComponent("log-\(UUID().uuidString)")
            try text.write(to: file, atomically: true, encoding: .utf8)
            return try await run("/usr/bin/env", ["python3", script, file.path]).status
        }
        let clean = "info request method=POST route=/v1/contacts/{email} client=203.0.113.0 contact=p_0123abcd database=postgres://tidings@127.0.0.1:5432/db\n"
        #expect(try await scan(clean) == 0)
        #expect(try await scan(clean + "debug contact=ada@example.com\n") == 1)
        #expect(try await scan(clean + "info client=203.0.113.77\n") == 1)
        #expect(try await scan(clean + "info client=2001:db8:85a3:0:0:8a2e:370:7334\n") == 1)
        #expect(try await scan(clean + "trace auth=tdg_" + String(repeating: "a", count: 43) + "\n") == 1)
        #expect(try await scan(clean + "trace body={\"ref\":\"Quokka-property-5521\"}\n") == 1)
        #expect(try await scan("") == 1, "an empty capture means the logs were not captured")
    }
}
