import Crypto
import Foundation
import _CryptoExtras

/// A DKIM signing key of a sending domain (RFC 6376; Ed25519 per RFC 8463).
public struct DKIMKey: Sendable {
    public enum Algorithm: String, Sendable, Codable {
        case rsaSHA256 = "rsa-sha256"
        case ed25519SHA256 = "ed25519-sha256"
    }

    public let domain: String
    public let selector: String
    public let algorithm: Algorithm
    private let rsa: _RSA.Signing.PrivateKey?
    private let ed25519: Curve25519.Signing.PrivateKey?

    /// A new RSA-2048 key.
    public static func generateRSA(domain: String, selector: String) throws -> DKIMKey {
        DKIMKey(domain: domain, selector: selector, algorithm: .rsaSHA256, rsa: try _RSA.Signing.PrivateKey(keySize: .bits2048), ed25519: nil)
    }

    /// A new Ed25519 key, for a second signature next to RSA.
    public static func generateEd25519(domain: String, selector: String) -> DKIMKey {
        DKIMKey(domain: domain, selector: selector, algorithm: .ed25519SHA256, rsa: nil, ed25519: Curve25519.Signing.PrivateKey())
    }

    /// A key from `privateKey` (what `privateKey` gave when it was made).
    public init(domain: String, selector: String, algorithm: Algorithm, privateKey: String) throws {
        self.domain = domain
        self.selector = selector
        self.algorithm = algorithm
        switch algorithm {
        case .rsaSHA256:
            rsa = try _RSA.Signing.PrivateKey(pemRepresentation: privateKey)
            ed25519 = nil
        case .ed25519SHA256:
            guard let raw = Data(base64Encoded: privateKey) else { throw DKIMError.malformedKey }
            rsa = nil
            ed25519 = try Curve25519.Signing.PrivateKey(rawRepresentation: raw)
        }
    }

    private init(domain: String, selector: String, algorithm: Algorithm, rsa: _RSA.Signing.PrivateKey?, ed25519: Curve25519.Signing.PrivateKey?) {
        self.domain = domain
        self.selector = selector
        self.algorithm = algorithm
        self.rsa = rsa
        self.ed25519 = ed25519
    }

    /// The private key to store (sealed): PEM for RSA, base64 of the raw key for Ed25519.
    public var privateKey: String {
        switch algorithm {
        case .rsaSHA256: rsa!.pemRepresentation
        case .ed25519SHA256: ed25519!.rawRepresentation.base64EncodedString()
        }
    }

    /// Where the public key is published: `selector._domainkey.domain`.
    public var dnsName: String { "\(selector)._domainkey.\(domain)" }

    /// The TXT record to publish at `dnsName`.
    public var dnsRecord: String {
        "v=DKIM1; k=\(keyType); p=\(Data(publicKey).base64EncodedString())"
    }

    /// The record's `k=`: `rsa` or `ed25519`.
    public var keyType: String {
        algorithm == .rsaSHA256 ? "rsa" : "ed25519"
    }

    /// The record's `p=` decoded: the DER SubjectPublicKeyInfo for RSA, the raw 32 bytes for Ed25519.
    public var publicKey: [UInt8] {
        switch algorithm {
        case .rsaSHA256: Array(rsa!.publicKey.derRepresentation)
        case .ed25519SHA256: Array(ed25519!.publicKey.rawRepresentation)
        }
    }

    func sign(_ headerHash: SHA256.Digest) throws -> Data {
        switch algorithm {
        case .rsaSHA256:
            return try rsa!.signature(for: headerHash, padding: .insecurePKCS1v1_5).rawRepresentation
        case .ed25519SHA256:
            // RFC 8463: Ed25519 signs the SHA-256 hash of the canonicalized header data.
            return try ed25519!.signature(for: Data(headerHash))
        }
    }
}

public enum DKIMError: Error, Equatable {
    case malformedKey
    case malformedMessage
}

/// Signs built messages: relaxed/relaxed canonicalization, no `l=`, the usual headers
/// covered and `From` signed once more than it appears, so that adding a second `From`
/// breaks the signature.
public enum DKIMSigner {
    /// Headers signed when present, in this order.
    static let signedHeaders = [
        "from", "to", "cc", "reply-to", "subject", "date", "message-id", "mime-version",
        "content-type", "content-transfer-encoding", "list-unsubscribe", "list-unsubscribe-post",
    ]

    /// The message with one `DKIM-Signature` header per key put in front of it.
    public static func sign(_ message: [UInt8], with keys: [DKIMKey], at time: Date) throws -> [UInt8] {
        guard let split = headerEnd(message) else { throw DKIMError.malformedMessage }
        let headers = parseHeaders(Array(message[..<split.headerEnd]))
        let bodyHash = Data(SHA256.hash(data: canonicalBody(Array(message[split.bodyStart...])))).base64EncodedString()

        var present = signedHeaders.filter { name in headers.contains { $0.name == name } }
        present.append("from")
        var signatures: [UInt8] = []
        for key in keys {
            let prefix = """
                DKIM-Signature: v=1; a=\(key.algorithm.rawValue); c=relaxed/relaxed; d=\(key.domain); s=\(key.selector);\r
                \tt=\(Int(time.timeIntervalSince1970)); h=\(present.joined(separator: ":"));\r
                \tbh=\(bodyHash);\r
                \tb=
                """
            var data: [UInt8] = []
            var used: [String: Int] = [:]
            for name in present {
                // Each occurrence of a name takes the next instance from the bottom; a name
                // listed more often than it appears signs an empty value (the over-signing).
                let instances = headers.filter { $0.name == name }
                let count = used[name, default: 0]
                used[name] = count + 1
                guard count < instances.count else { continue }
                data += canonicalHeader(instances[instances.count - 1 - count].raw) + [0x0D, 0x0A]
            }
            data += canonicalHeader(Array(prefix.utf8))
            let signature = try key.sign(SHA256.hash(data: data)).base64EncodedString()
            signatures += Array((prefix + fold(signature) + "\r\n").utf8)
        }
        return signatures + message
    }

    /// The signature value in lines of at most 72 characters.
    static func fold(_ value: String) -> String {
        var lines: [Substring] = []
        var rest = Substring(value)
        while rest.count > 72 {
            lines.append(rest.prefix(72))
            rest = rest.dropFirst(72)
        }
        lines.append(rest)
        return lines.joined(separator: "\r\n\t")
    }

    struct Header {
        /// Lowercased field name.
        var name: String
        /// The whole field as written, folds included, without its final CRLF.
        var raw: [UInt8]
    }

    /// Where the header block ends (its last CRLF excluded) and the body starts.
    static func headerEnd(_ message: [UInt8]) -> (headerEnd: Int, bodyStart: Int)? {
        var index = 0
        while index + 3 < message.count {
            if message[index] == 0x0D, message[index + 1] == 0x0A, message[index + 2] == 0x0D, message[index + 3] == 0x0A {
                return (index, index + 4)
            }
            index += 1
        }
        return nil
    }

    static func parseHeaders(_ block: [UInt8]) -> [Header] {
        var headers: [Header] = []
        var current: [UInt8] = []
        var index = 0
        func finish() {
            guard !current.isEmpty else { return }
            let name = String(decoding: current.prefix { $0 != 0x3A }, as: UTF8.self).trimmingCharacters(in: .whitespaces).lowercased()
            headers.append(Header(name: name, raw: current))
            current = []
        }
        while index <= block.count {
            let lineEnd = (index..<block.count).first { block[$0] == 0x0D && $0 + 1 < block.count && block[$0 + 1] == 0x0A } ?? block.count
            let line = Array(block[index..<lineEnd])
            if let first = line.first, first == 0x20 || first == 0x09 {
                current += [0x0D, 0x0A] + line
            } else {
                finish()
                current = line
            }
            index = lineEnd + 2
        }
        finish()
        return headers
    }

    /// RFC 6376 §3.4.2: lowercase name, unfolded, blanks compressed, none at the ends of the value.
    static func canonicalHeader(_ raw: [UInt8]) -> [UInt8] {
        guard let colon = raw.firstIndex(of: 0x3A) else { return raw }
        let name = String(decoding: raw[..<colon], as: UTF8.self).trimmingCharacters(in: .whitespaces).lowercased()
        var value: [UInt8] = []
        var pendingSpace = false
        for byte in raw[(colon + 1)...] where byte != 0x0D && byte != 0x0A {
            if byte == 0x20 || byte == 0x09 {
                pendingSpace = true
            } else {
                if pendingSpace, !value.isEmpty { value.append(0x20) }
                pendingSpace = false
                value.append(byte)
            }
        }
        return Array(name.utf8) + [0x3A] + value
    }

    /// RFC 6376 §3.4.4: blanks compressed and removed at line ends, trailing empty lines removed.
    static func canonicalBody(_ body: [UInt8]) -> [UInt8] {
        var lines: [[UInt8]] = []
        var line: [UInt8] = []
        var index = 0
        while index < body.count {
            if body[index] == 0x0D, index + 1 < body.count, body[index + 1] == 0x0A {
                lines.append(line)
                line = []
                index += 2
                continue
            }
            line.append(body[index])
            index += 1
        }
        if !line.isEmpty { lines.append(line) }
        var output: [UInt8] = []
        var emptyRun = 0
        for raw in lines {
            var canonical: [UInt8] = []
            var pendingSpace = false
            for byte in raw {
                if byte == 0x20 || byte == 0x09 {
                    pendingSpace = true
                } else {
                    if pendingSpace { canonical.append(0x20) }
                    pendingSpace = false
                    canonical.append(byte)
                }
            }
            if canonical.isEmpty {
                emptyRun += 1
                continue
            }
            for _ in 0..<emptyRun { output += [0x0D, 0x0A] }
            emptyRun = 0
            output += canonical + [0x0D, 0x0A]
        }
        return output
    }
}
