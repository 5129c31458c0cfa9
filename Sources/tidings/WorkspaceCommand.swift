import ArgumentParser
import Foundation
import TidingsApp
import TidingsDomain

struct WorkspaceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workspace",
        abstract: "Create and list workspaces.",
        subcommands: [Create.self, List.self, Delete.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a workspace and its first API key (admin scope); the key is printed once."
        )

        @OptionGroup var settings: SettingsOptions
        @Option(help: "The workspace's name.")
        var name: String
        @Option(help: "The owner's email address.")
        var ownerEmail: String
        @Flag(help: "Print exactly one JSON object {\"workspaceId\", \"apiKey\"} on stdout.")
        var json = false

        func run() async throws {
            let (name, ownerEmail, json) = (name, ownerEmail, json)
            try await settings.withTidings { tidings in
                let created = try await tidings.workspaces.create(
                    name: name, ownerEmail: ownerEmail, environment: tidings.configuration.environment, by: .commandLine
                )
                if json {
                    try printJSON(["workspaceId": created.workspace.id, "apiKey": created.token.secret])
                } else {
                    print("Workspace \(created.workspace.id) (\(created.workspace.name)) created.")
                    print("API key \(created.apiKey.id) with the admin scope — store it now, it is not shown again:")
                    print(created.token.secret)
                }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a workspace and everything in it; its data keys are destroyed, so backups of its data become unreadable."
        )

        @OptionGroup var settings: SettingsOptions
        @Option(help: "Workspace id.") var id: String
        @Flag(help: "Confirm that the workspace and all its data go for good.") var yes = false

        func run() async throws {
            guard yes else { throw ValidationError("Deleting a workspace cannot be undone; add --yes to confirm.") }
            let id = id
            try await settings.withTidings { tidings in
                try await tidings.workspaces.delete(id: id, by: .commandLine)
                print("Workspace \(id) deleted; its data keys are destroyed.")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List workspaces.")

        @OptionGroup var settings: SettingsOptions
        @Flag(help: "Print a JSON array.")
        var json = false

        func run() async throws {
            let json = self.json
            try await settings.withTidings { tidings in
                let workspaces = try await tidings.workspaces.list()
                if json {
                    let objects: [[String: Any]] = workspaces.map {
                        ["id": $0.id, "name": $0.name, "environment": $0.environment.rawValue, "createdAt": Timestamp.format($0.createdAt)]
                    }
                    let data = try JSONSerialization.data(withJSONObject: objects, options: [.sortedKeys])
                    print(String(decoding: data, as: UTF8.self))
                } else if workspaces.isEmpty {
                    print("No workspaces yet; create one with `tidings workspace create`.")
                } else {
                    for workspace in workspaces {
                        print("\(workspace.id)  \(workspace.environment.rawValue)  \(Timestamp.format(workspace.createdAt))  \(workspace.name)")
                    }
                }
            }
        }
    }
}
