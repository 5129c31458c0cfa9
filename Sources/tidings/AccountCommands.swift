import ArgumentParser
import Foundation
import TidingsApp
import TidingsDomain
import TidingsServices

struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user",
        abstract: "Add workspace members and disable accounts.",
        subcommands: [Add.self, Disable.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a member to a workspace; prints a single-use, expiring link where they set a password and enrol MFA."
        )

        @OptionGroup var settings: SettingsOptions
        @Option(help: "Workspace id.") var workspace: String
        @Option(help: "The person's email address.") var email: String
        @Option(help: "owner, admin, developer or viewer.") var role: String

        func run() async throws {
            let (workspace, email) = (workspace, email)
            let role = try Role.parse(role)
            try await settings.withTidings { tidings in
                let added = try await tidings.accounts.addMember(workspaceId: workspace, email: email, role: role, by: .commandLine)
                if let link = added.setupLink {
                    print("Member \(added.account.id) added as \(role.rawValue). Send them this single-use setup link (valid 72 hours):")
                    print(link)
                } else {
                    print("Member \(added.account.id) added as \(role.rawValue); the account is set up already.")
                }
            }
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable an account and end its sessions at once.")

        @OptionGroup var settings: SettingsOptions
        @Option(help: "Account id (usr_...).") var id: String
        @Option(help: "Why, for the audit log.") var reason: String

        func run() async throws {
            let (id, reason) = (id, reason)
            try await settings.withTidings { tidings in
                try await tidings.accounts.disable(accountId: id, reason: reason, by: .commandLine)
                print("Account \(id) disabled; its sessions have ended.")
            }
        }
    }
}

struct OperatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "operator",
        abstract: "Add operators: the people who run this instance.",
        subcommands: [Add.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add an operator; prints a single-use setup link. Operators enrol MFA and acknowledge the confidentiality statement before first access."
        )

        @OptionGroup var settings: SettingsOptions
        @Option(help: "The operator's email address.") var email: String

        func run() async throws {
            let email = email
            try await settings.withTidings { tidings in
                let added = try await tidings.accounts.addOperator(email: email, by: .commandLine)
                print("Operator \(added.account.id) added. Send them this single-use setup link (valid 72 hours):")
                print(added.setupLink ?? "")
            }
        }
    }
}

struct AccessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "access",
        abstract: "Review who can access what.",
        subcommands: [Review.self]
    )

    struct Review: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List every account and API key with role, MFA state and last use, and record your sign-off in the audit log."
        )

        @OptionGroup var settings: SettingsOptions
        @Option(help: "Your name, recorded with the sign-off.") var reviewer: String
        @Flag(help: "One JSON object per line.") var json = false

        func run() async throws {
            let (reviewer, json) = (reviewer, json)
            try await settings.withTidings { tidings in
                let lines = try await tidings.accounts.accessReview(reviewer: reviewer, actor: .commandLine)
                for line in lines {
                    let lastUsed = line.lastUsed.map(Timestamp.format) ?? "never"
                    if json {
                        var object: [String: Any] = [
                            "kind": line.kind, "id": line.id, "name": line.label, "role": line.role, "status": line.status,
                            "mfa": line.mfa, "lastUsed": lastUsed,
                        ]
                        object["workspaceId"] = line.workspaceId
                        try printJSON(object)
                    } else {
                        print([line.kind, line.id, line.label, line.workspaceId ?? "-", line.role, line.status, "mfa: \(line.mfa)", "last used: \(lastUsed)"]
                            .joined(separator: "  "))
                    }
                }
                if !json { print("Review by \(reviewer) recorded in the audit log (\(lines.count) entries).") }
            }
        }
    }
}
