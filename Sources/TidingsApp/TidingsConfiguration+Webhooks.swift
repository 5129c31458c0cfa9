import Configuration
import Foundation
import TidingsDomain
import TidingsServices

extension TidingsConfiguration.Key {
    public static let webhookConcurrency = "tidings.webhookConcurrency"
    public static let webhookTimeoutSeconds = "tidings.webhookTimeoutSeconds"
    public static let webhookGiveUpHours = "tidings.webhookGiveUpHours"
    public static let webhookDisableAfterHours = "tidings.webhookDisableAfterHours"
    public static let webhookCaFile = "tidings.webhookCaFile"
    public static let webhookLogDays = "tidings.webhookLogDays"
}

extension TidingsConfiguration {
    /// Delivering webhooks (`TIDINGS_WEBHOOK_*`). Targets follow `OutboundURLPolicy` for
    /// `environment`: HTTPS, and in production public addresses only.
    static func webhookSettings(_ reader: ConfigReader, environment: DeploymentEnvironment) throws -> WebhookSettings {
        func string(_ key: String) -> String? {
            reader.string(forKey: ConfigKey(key)).flatMap { $0.isEmpty ? nil : $0 }
        }
        func positive(_ key: String, default fallback: Int, max: Int) throws -> Int {
            guard let text = string(key) else { return fallback }
            guard let value = Int(text), (1...max).contains(value) else {
                throw Invalid(description: "\(variableName(key)) must be a whole number from 1 to \(max); got '\(text)'.")
            }
            return value
        }
        var trustRoots: [String] = []
        if let caFile = string(Key.webhookCaFile) {
            guard FileManager.default.isReadableFile(atPath: caFile) else {
                throw Invalid(description: "\(variableName(Key.webhookCaFile)) names \(caFile), which cannot be read.")
            }
            trustRoots.append(caFile)
        }
        return WebhookSettings(
            policy: OutboundURLPolicy(environment: environment),
            concurrency: try positive(Key.webhookConcurrency, default: 16, max: 500),
            timeout: .seconds(try positive(Key.webhookTimeoutSeconds, default: 15, max: 120)),
            giveUpAfter: TimeInterval(try positive(Key.webhookGiveUpHours, default: 72, max: 24 * 30) * 3600),
            disableAfter: TimeInterval(try positive(Key.webhookDisableAfterHours, default: 72, max: 24 * 90) * 3600),
            trustRoots: trustRoots,
            logRetention: TimeInterval(try positive(Key.webhookLogDays, default: 30, max: 3650) * 86400)
        )
    }
}
