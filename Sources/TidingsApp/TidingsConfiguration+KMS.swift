import Configuration
import TidingsDomain
import TidingsKMS

extension TidingsConfiguration {
    /// The `aws-kms` settings: every one that is missing or wrong is refused at start, naming its variable.
    /// Credentials come from AWS's standard variables and are read as secrets (never logged).
    /// The endpoint follows `OutboundURLPolicy`: plain `http://` only to loopback, and only
    /// outside production.
    static func awsKMSSettings(_ reader: ConfigReader, environment: DeploymentEnvironment) throws -> AWSKMSKeyProvider.Settings {
        func string(_ key: String, secret: Bool = false) -> String? {
            reader.string(forKey: ConfigKey(key), isSecret: secret).flatMap { $0.isEmpty ? nil : $0 }
        }
        let provider = "\(variableName(Key.kmsProvider))=\(KEKProvider.awsKMS.rawValue)"
        func required(_ key: String, secret: Bool = false, _ what: String) throws -> String {
            guard let value = string(key, secret: secret) else {
                throw Invalid(description: "\(provider) needs \(variableName(key)) (\(what)).")
            }
            return value
        }

        let keyId = try required(Key.kmsKeyId, "the key id, key ARN or alias of a symmetric KMS key")
        guard let region = string(Key.kmsRegion) ?? string(Key.awsRegion) ?? string(Key.awsDefaultRegion) else {
            throw Invalid(description: """
                \(provider) needs \(variableName(Key.kmsRegion)) (or \(variableName(Key.awsRegion)) / \
                \(variableName(Key.awsDefaultRegion))), the key's region such as eu-west-1.
                """)
        }
        guard region.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
            throw Invalid(description: "\(variableName(Key.kmsRegion)) must be an AWS region such as eu-west-1; got '\(region)'.")
        }
        let endpoint: KMSEndpoint
        do {
            endpoint = try string(Key.kmsEndpoint).map { try KMSEndpoint(parsing: $0, policy: OutboundURLPolicy(environment: environment)) } ?? KMSEndpoint.aws(region: region)
        } catch let error as KMSEndpoint.Refused {
            throw Invalid(description: "\(variableName(Key.kmsEndpoint)): \(error.description)")
        }
        let credentials = AWSCredentials(
            accessKeyId: try required(Key.awsAccessKeyId, secret: true, "the access key id of the credentials Tidings calls KMS with"),
            secretAccessKey: try required(Key.awsSecretAccessKey, secret: true, "the secret access key of those credentials"),
            sessionToken: string(Key.awsSessionToken, secret: true)
        )
        return AWSKMSKeyProvider.Settings(keyId: keyId, region: region, endpoint: endpoint, credentials: credentials)
    }
}
