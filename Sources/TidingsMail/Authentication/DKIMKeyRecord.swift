import Foundation

/// A DKIM public key record (RFC 6376 §3.6.1), published as TXT at
/// `<selector>._domainkey.<domain>`.
public struct DKIMKeyRecord: Sendable, Equatable {
    /// `k=`: `rsa` unless given.
    public var keyType: String
    /// `p=` decoded; empty when the key is revoked.
    public var publicKey: [UInt8]
    /// `t=y`: the domain is testing DKIM; receivers treat failures leniently.
    public var isTesting: Bool

    public init(parsing text: String) throws(DKIMKeyRecordError) {
        var tags: [String: String] = [:]
        var order: [String] = []
        for piece in text.split(separator: ";", omittingEmptySubsequences: false) {
            let trimmed = piece.trimmingWhitespace
            if trimmed.isEmpty { continue }
            let parts = trimmed.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw DKIMKeyRecordError("'\(trimmed.prefix(40))' is not a tag=value pair.") }
            let name = String(parts[0].trimmingWhitespace)
            guard tags[name] == nil else { throw DKIMKeyRecordError("The tag \(name)= appears more than once.") }
            tags[name] = String(parts[1].trimmingWhitespace)
            order.append(name)
        }
        // §3.6.1: v= is optional, but when present it is first and DKIM1.
        if let version = tags["v"] {
            guard order.first == "v", version == "DKIM1" else { throw DKIMKeyRecordError("v=\(version) must be v=DKIM1, as the first tag.") }
        }
        guard let key = tags["p"] else { throw DKIMKeyRecordError("The record has no public key (p=).") }
        // Base64 may be broken by whitespace (§3.6.1: FWS between characters).
        let compact = key.filter { !$0.isWhitespace }
        if compact.isEmpty {
            publicKey = []
        } else {
            guard let decoded = Data(base64Encoded: compact) else { throw DKIMKeyRecordError("p= is not base64.") }
            publicKey = Array(decoded)
        }
        keyType = tags["k"]?.lowercased() ?? "rsa"
        isTesting = tags["t"].map { flags in flags.split(separator: ":").contains { $0.trimmingWhitespace == "y" } } ?? false
    }

    public var isRevoked: Bool { publicKey.isEmpty }
}

public struct DKIMKeyRecordError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
