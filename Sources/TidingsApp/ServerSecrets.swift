import Crypto
import Foundation

/// Secrets kept outside the database: a copy of the database alone is not enough to use what is in it.
enum ServerSecrets {
    struct Problem: Error, CustomStringConvertible {
        var description: String
    }

    /// The HMAC key for API-key hashes: from configuration, else from its file, created on first start.
    static func apiKeyHashKey(_ configuration: TidingsConfiguration) throws -> SymmetricKey {
        if let encoded = configuration.apiKeySecret {
            guard let data = Data(base64Encoded: encoded), data.count >= 32 else {
                throw Problem(description: "TIDINGS_API_KEY_SECRET must be base64 of at least 32 random bytes.")
            }
            return SymmetricKey(data: data)
        }
        return try loadOrCreateKeyFile(at: configuration.apiKeySecretFile)
    }

    static func loadOrCreateKeyFile(at path: String) throws -> SymmetricKey {
        let manager = FileManager.default
        if !manager.fileExists(atPath: path) {
            let directory = (path as NSString).deletingLastPathComponent
            try manager.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let key = SymmetricKey(size: .bits256)
            let encoded = key.withUnsafeBytes { Data($0).base64EncodedString() } + "\n"
            guard manager.createFile(atPath: path, contents: Data(encoded.utf8), attributes: [.posixPermissions: 0o600]) else {
                throw Problem(description: "Could not create the key file \(path).")
            }
        }
        let attributes = try manager.attributesOfItem(atPath: path)
        if let mode = attributes[.posixPermissions] as? NSNumber, mode.intValue & 0o077 != 0 {
            throw Problem(description: "The key file \(path) is readable by other users (mode \(String(mode.intValue, radix: 8))); run chmod 600 on it.")
        }
        let text = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let data = Data(base64Encoded: text), data.count >= 32 else {
            throw Problem(description: "The key file \(path) does not hold base64 of at least 32 bytes.")
        }
        return SymmetricKey(data: data)
    }
}
