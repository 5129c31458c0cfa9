import ArgumentParser
import Foundation
import TidingsApp
import TidingsCrypto
import TidingsServices

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Rotate the key-encryption key and data keys.",
        subcommands: [RotateKEK.self, RotateDataKey.self]
    )

    struct RotateKEK: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-kek",
            abstract: "Replace the local key-encryption key: re-wrap every data key, without touching sealed data.",
            discussion: """
                A new KEK is written next to the current one (<kek-file>.next), every data key is \
                re-wrapped with it in one transaction, and then it takes the current file's place; \
                the previous KEK is kept as <kek-file>.retired-<id> until you delete it. An \
                interrupted rotation is finished by running the command again.
                """
        )

        @OptionGroup var settings: SettingsOptions

        func run() async throws {
            // A KEK held in KMS is rotated there (KMS keeps older key material, so wraps stay readable).
            if let configuration = try? await TidingsConfiguration.load(flags: settings.flags, environment: ProcessInfo.processInfo.environment),
               configuration.kekProvider != .local {
                throw ValidationError(
                    "rotate-kek replaces the local KEK file; with TIDINGS_KMS_PROVIDER=\(configuration.kekProvider.rawValue) the KEK lives in KMS."
                )
            }
            // Bring the schema up to date with the current KEK first.
            let kekFile = try await settings.withTidings { tidings in tidings.configuration.kekFile }
            let previous = try LocalKeyProvider.loadOrCreate(at: kekFile)
            let nextFile = kekFile + ".next"
            let next = try LocalKeyProvider.loadOrCreate(at: nextFile)
            let count = try await settings.open(extraFlags: [TidingsConfiguration.Key.kekFile: nextFile]).withDatabase { tidings in
                try await KeyRotation(tidings.environment).rewrapAll(from: previous, by: .commandLine)
            }
            let retired = "\(kekFile).retired-\(previous.kekId)"
            try FileManager.default.moveItem(atPath: kekFile, toPath: retired)
            try FileManager.default.moveItem(atPath: nextFile, toPath: kekFile)
            print("Re-wrapped \(count) keys with the new KEK \(next.kekId).")
            print("The previous KEK is kept at \(retired); delete it once nothing needs it.")
        }
    }

    struct RotateDataKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-data-key",
            abstract: "Start a new data key for a workspace, re-seal its values and delete the old key."
        )

        @OptionGroup var settings: SettingsOptions
        @Option(help: "Workspace id ('instance' for instance-level data).")
        var workspace: String

        func run() async throws {
            let workspace = workspace
            try await settings.withTidings { tidings in
                if workspace != "instance", try await tidings.workspaces.find(id: workspace) == nil {
                    throw ValidationError("No workspace with id \(workspace) exists.")
                }
                let result = try await KeyRotation(tidings.environment).rotateDataKey(scope: workspace, by: .commandLine)
                print("New data key \(result.newKeyId): re-sealed \(result.resealed) values, deleted \(result.retiredKeysDeleted) retired keys.")
            }
        }
    }
}
