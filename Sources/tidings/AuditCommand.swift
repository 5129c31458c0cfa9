import ArgumentParser
import Foundation
import TidingsApp
import TidingsServices

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Check the audit log for tampering.",
        subcommands: [Verify.self]
    )

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify the hash chains and signed checkpoints; name the first event that was changed, deleted, inserted or reordered.",
            discussion: "Exits with status 0 when every stream is intact and 1 when any is not."
        )

        @OptionGroup var settings: SettingsOptions
        @Option(help: "Verify only this workspace's stream (use 'instance' for instance-level actions).")
        var workspace: String?
        @Flag(help: "Print one JSON object per stream.")
        var json = false

        func run() async throws {
            let (workspace, json) = (workspace, json)
            let intact = try await settings.withTidings { tidings in
                let results = try await tidings.audit.verify(stream: workspace)
                for result in results {
                    if json {
                        var object: [String: Any] = [
                            "stream": result.stream, "events": result.events, "checkpoints": result.checkpoints,
                            "payloadsDropped": result.payloadsDropped, "intact": result.problem == nil,
                        ]
                        object["problem"] = result.problem
                        try printJSON(object)
                    } else if let problem = result.problem {
                        print("\(result.stream): TAMPERED — \(problem)")
                    } else {
                        print("\(result.stream): intact — \(result.events) events, \(result.checkpoints) signed checkpoints")
                    }
                }
                if results.isEmpty, !json { print("The audit log is empty.") }
                return results.allSatisfy { $0.problem == nil }
            }
            if !intact { throw ExitCode(1) }
        }
    }
}
