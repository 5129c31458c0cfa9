import Crypto
import Foundation
import TidingsCrypto

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
        return try KeyFile.loadOrCreate(at: configuration.apiKeySecretFile)
    }
}
