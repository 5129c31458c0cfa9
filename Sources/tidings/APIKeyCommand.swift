import ArgumentParser
import Foundation
import TidingsApp
import TidingsDomain
import TidingsServices

struct APIKeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apikey",
        abstract: "Manage a workspace's API keys.",
        discussion: "Scopes: \(Scope.allCases.map(\.rawValue).joined(separator: ", ")). Secrets are printed once.",
        subcommands: [Create.self, List.self, Revoke.self, Rotate.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key; its secret is printed once.")
        @OptionGroup var settings: SettingsOptions
        @Option(help: "Workspace id.") var workspace: String
        @Option(help: "A name that says what the key is for.") var name: String
        @Option(name: .customLong("scope"), help: "A scope to grant; repeat for several (default: all but admin).")
        var scopes: [String] = []
        @Option(help: "RFC 3339 time after which the key stops working.") var expiresAt: String?
        @Flag(help: "Print the key as JSON.") var json = false

        func run() async throws {
            let scopes = try scopes.isEmpty ? Scope.defaultForNewKeys : Scope.parseList(scopes)
            var expiry: Date?
            if let expiresAt {
                guard let date = Timestamp.parse(expiresAt) else { throw ValidationError("--expires-at must be an RFC 3339 date-time.") }
                expiry = date
            }
            let (workspace, name, json) = (workspace, name, json)
            try await settings.withTidings { [expiry] tidings in
                let issued = try await tidings.apiKeys.create(workspaceId: workspace, name: name, scopes: scopes, expiresAt: expiry, by: .commandLine)
                if json {
                    try printJSON(["id": issued.key.id, "apiKey": issued.token.secret, "scopes": issued.key.scopes.map(\.rawValue)])
                } else {
                    print("API key \(issued.key.id) created — store it now, it is not shown again:")
                    print(issued.token.secret)
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a workspace's keys (never their secrets).")
        @OptionGroup var settings: SettingsOptions
        @Option(help: "Workspace id.") var workspace: String

        func run() async throws {
            let workspace = workspace
            try await settings.withTidings { tidings in
                let now = Date()
                for key in try await tidings.apiKeys.list(workspaceId: workspace) {
                    let state = key.status(at: now)
                    let used = key.lastUsedAt.map(Timestamp.format) ?? "never used"
                    print("\(key.id)  \(state)  tdg_\(key.hint)…  \(key.scopes.map(\.rawValue).joined(separator: ","))  \(used)  \(key.name)")
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key at once.")
        @OptionGroup var settings: SettingsOptions
        @Option(help: "Workspace id.") var workspace: String
        @Option(help: "Key id.") var id: String

        func run() async throws {
            let (workspace, id) = (workspace, id)
            try await settings.withTidings { tidings in
                _ = try await tidings.apiKeys.revoke(workspaceId: workspace, id: id, by: .commandLine)
                print("API key \(id) revoked.")
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Issue a new secret; the old one works for the overlap.")
        @OptionGroup var settings: SettingsOptions
        @Option(help: "Workspace id.") var workspace: String
        @Option(help: "Key id.") var id: String
        @Option(help: "Seconds the old secret keeps working (default 86400; 0 = stop at once).")
        var overlapSeconds: Int = Int(APIKeyService.defaultRotationOverlap)

        func run() async throws {
            let (workspace, id, overlap) = (workspace, id, overlapSeconds)
            try await settings.withTidings { tidings in
                let issued = try await tidings.apiKeys.rotate(workspaceId: workspace, id: id, overlap: TimeInterval(overlap), by: .commandLine)
                print("API key \(id) rotated; the old secret works for \(overlap) more seconds. New secret, shown once:")
                print(issued.token.secret)
            }
        }
    }
}
