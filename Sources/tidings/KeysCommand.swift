import ArgumentParser
import Foundation
import TidingsApp
import TidingsCrypto
import TidingsServices

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Rotate the key-encryption key and data keys.",
        subcommands: [RotateKEK.self, RotateDataKey.self, FinishRotations.self]
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
        @Option(help: "With TIDINGS_KMS_PROVIDER=aws-kms: the KMS key to re-wrap every data key under (id, ARN or alias).")
        var toKeyId: String?

        func run() async throws {
            let configuration: TidingsConfiguration
            do {
                configuration = try await TidingsConfiguration.load(flags: settings.flags, environment: ProcessInfo.processInfo.environment)
            } catch let error as TidingsConfiguration.Invalid {
                throw ValidationError(error.description)
            }
            // Bring the schema up to date with the current KEK first.
            try await settings.withTidings { _ in }
            if configuration.kekProvider == .awsKMS {
                try await rotateInKMS(configuration)
            } else {
                guard toKeyId == nil else { throw ValidationError("--to-key-id applies with TIDINGS_KMS_PROVIDER=aws-kms only.") }
                try await rotateLocal(configuration)
            }
        }

        func rotateLocal(_ configuration: TidingsConfiguration) async throws {
            let kekFile = configuration.kekFile
            let previous = try LocalKeyProvider.loadOrCreate(at: kekFile)
            let nextFile = kekFile + ".next"
            let next = try LocalKeyProvider.loadOrCreate(at: nextFile)
            let count = try await settings.withTidings(migrate: false, extraFlags: [TidingsConfiguration.Key.kekFile: nextFile]) { tidings in
                try await KeyRotation(tidings.environment).rewrapAll(from: previous, by: .commandLine)
            }
            let retired = "\(kekFile).retired-\(previous.kekId)"
            try FileManager.default.moveItem(atPath: kekFile, toPath: retired)
            try FileManager.default.moveItem(atPath: nextFile, toPath: kekFile)
            print("Re-wrapped \(count) keys with the new KEK \(next.kekId).")
            print("The previous KEK is kept at \(retired); delete it once nothing needs it.")
        }

        /// The KEK never leaves KMS: each data key is unwrapped with the current KMS key and
        /// wrapped with the new one; Tidings is then pointed at the new key.
        func rotateInKMS(_ configuration: TidingsConfiguration) async throws {
            guard let toKeyId, !toKeyId.isEmpty else {
                throw ValidationError("""
                    With TIDINGS_KMS_PROVIDER=aws-kms, name the new KMS key: rotate-kek --to-key-id KEY. \
                    (Rotation inside KMS keeps older key material, so it needs no re-wrapping.)
                    """)
            }
            let previous = try Tidings.makeKeyProvider(configuration)
            let result: Result<Int, any Error>
            do {
                result = .success(try await settings.withTidings(migrate: false, extraFlags: [TidingsConfiguration.Key.kmsKeyId: toKeyId]) { tidings in
                    try await KeyRotation(tidings.environment).rewrapAll(from: previous, by: .commandLine)
                })
            } catch {
                result = .failure(error)
            }
            try? await previous.shutdown()
            let count = try result.get()
            print("Re-wrapped \(count) keys from \(previous.kekId) to aws-kms:\(toKeyId).")
            print("Now set TIDINGS_KMS_KEY_ID=\(toKeyId) on every instance; keep the previous key until no backup needs it.")
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
                print("The key just retired is deleted once every instance has switched (\(Int(Keyring.retiredKeyGrace)) s): by the server within the hour, or with `tidings keys finish-rotations`.")
            }
        }
    }

    struct FinishRotations: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "finish-rotations",
            abstract: "Re-seal what still uses retired data keys and delete those every instance has stopped using."
        )

        @OptionGroup var settings: SettingsOptions

        func run() async throws {
            try await settings.withTidings { tidings in
                let deleted = try await KeyRotation(tidings.environment).finishRotations()
                print("Deleted \(deleted) retired data keys.")
            }
        }
    }
}
