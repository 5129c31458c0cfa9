import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL
import SwiftASN1
import X509

/// An ACME client (RFC 8555) for the HTTP-01 challenge: account, order, authorisations,
/// finalisation with a CSR, download of the chain. Requests are JWS-signed with the account's
/// P-256 key (ES256); a `badNonce` answer is retried with the fresh nonce it carries.
public actor ACMEClient {
    public struct Problem: Error, CustomStringConvertible, Sendable {
        /// The RFC 8555 §6.7 type, e.g. `urn:ietf:params:acme:error:unauthorized`, or a local reason.
        public var type: String
        public var detail: String
        public var status: Int?
        public var description: String { "ACME \(type): \(detail)" + (status.map { " (HTTP \($0))" } ?? "") }
    }

    struct Directory: Decodable {
        var newNonce: String
        var newAccount: String
        var newOrder: String
    }

    struct Order: Decodable {
        var status: String
        var authorizations: [String]
        var finalize: String
        var certificate: String?
        var error: ProblemDocument?
    }

    struct Authorization: Decodable {
        struct Challenge: Decodable {
            var type: String
            var url: String
            var token: String?
            var status: String
            var error: ProblemDocument?
        }
        struct Identifier: Decodable { var value: String }
        var status: String
        var identifier: Identifier
        var challenges: [Challenge]
    }

    struct ProblemDocument: Decodable {
        var type: String?
        var detail: String?
    }

    private let http: HTTPClient
    private let directoryURL: URL
    private let key: P256.Signing.PrivateKey
    private var directory: Directory?
    private var nonce: String?
    private var accountURL: String?
    /// Seconds between polls of a pending authorisation or order.
    private let pollInterval: Duration
    private let pollLimit: Int

    /// - Parameters:
    ///   - trustRoots: PEM file of extra CAs for the ACME server's own HTTPS (a test CA); system roots otherwise.
    public init(
        directoryURL: URL, accountKey: P256.Signing.PrivateKey, trustRoots: String? = nil,
        pollInterval: Duration = .milliseconds(500), pollLimit: Int = 120
    ) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let trustRoots {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(trustRoots))
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls, redirectConfiguration: .disallow)
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(30))
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.directoryURL = directoryURL
        self.key = accountKey
        self.pollInterval = pollInterval
        self.pollLimit = pollLimit
    }

    public func shutdown() async throws {
        try await http.shutdown()
    }

    // MARK: - Account

    /// Registers the account (or finds the existing one for this key) and returns its URL.
    @discardableResult
    public func register(email: String?) async throws -> String {
        if let accountURL { return accountURL }
        let directory = try await loadDirectory()
        var payload: [String: Any] = ["termsOfServiceAgreed": true]
        if let email { payload["contact"] = ["mailto:\(email)"] }
        let response = try await post(directory.newAccount, payload: payload, useJWK: true)
        guard let location = response.headers.first(name: "Location") else {
            throw Problem(type: "malformed-response", detail: "newAccount answered without a Location header.")
        }
        accountURL = location
        return location
    }

    // MARK: - Issuance

    /// Orders a certificate for `names`, answers each HTTP-01 challenge through `publish`
    /// (the key authorisation to serve at `/.well-known/acme-challenge/<token>`), and returns
    /// the PEM chain for `certificateKey`.
    public func issue(
        names: [String], certificateKey: P256.Signing.PrivateKey,
        publish: @Sendable (_ token: String, _ keyAuthorization: String) async -> Void,
        withdraw: @Sendable (_ token: String) async -> Void
    ) async throws -> String {
        let directory = try await loadDirectory()
        try await register(email: nil)
        let identifiers = names.map { ["type": Self.isIPAddress($0) ? "ip" : "dns", "value": $0] }
        let created = try await post(directory.newOrder, payload: ["identifiers": identifiers])
        guard let orderURL = created.headers.first(name: "Location") else {
            throw Problem(type: "malformed-response", detail: "newOrder answered without a Location header.")
        }
        var order = try decode(Order.self, created.body)
        for authorizationURL in order.authorizations {
            try await authorize(authorizationURL, publish: publish, withdraw: withdraw)
        }
        order = try await poll(orderURL, as: Order.self, until: { ["ready", "valid", "invalid"].contains($0.status) })
        guard order.status != "invalid" else { throw orderProblem(order) }
        if order.status == "ready" {
            let csr = try Self.certificateSigningRequest(names: names, key: certificateKey)
            _ = try await post(order.finalize, payload: ["csr": Self.base64URL(csr)])
            order = try await poll(orderURL, as: Order.self, until: { ["valid", "invalid"].contains($0.status) })
        }
        guard order.status == "valid", let certificateURL = order.certificate else { throw orderProblem(order) }
        let download = try await post(certificateURL, payload: nil)
        guard let pem = String(data: download.body, encoding: .utf8), pem.contains("-----BEGIN CERTIFICATE-----") else {
            throw Problem(type: "malformed-response", detail: "The certificate download is not a PEM chain.")
        }
        return pem
    }

    private func authorize(
        _ url: String, publish: @Sendable (String, String) async -> Void, withdraw: @Sendable (String) async -> Void
    ) async throws {
        let authorization = try decode(Authorization.self, try await post(url, payload: nil).body)
        if authorization.status == "valid" { return }
        guard let challenge = authorization.challenges.first(where: { $0.type == "http-01" }), let token = challenge.token else {
            throw Problem(type: "unsupported-challenge", detail: "The CA offers no http-01 challenge for \(authorization.identifier.value).")
        }
        let keyAuthorization = token + "." + thumbprint
        await publish(token, keyAuthorization)
        do {
            _ = try await post(challenge.url, payload: [String: Any]())
            let done = try await poll(url, as: Authorization.self, until: { $0.status != "pending" })
            await withdraw(token)
            guard done.status == "valid" else {
                let failed = done.challenges.first { $0.type == "http-01" }?.error
                throw Problem(
                    type: failed?.type ?? "authorization-\(done.status)",
                    detail: "The CA could not validate \(done.identifier.value) over HTTP-01 (port 80 → Tidings' HTTP port): \(failed?.detail ?? done.status)."
                )
            }
        } catch {
            await withdraw(token)
            throw error
        }
    }

    private func orderProblem(_ order: Order) -> Problem {
        Problem(type: order.error?.type ?? "order-\(order.status)", detail: order.error?.detail ?? "The order ended as \(order.status).")
    }

    private func poll<T: Decodable>(_ url: String, as type: T.Type, until done: (T) -> Bool) async throws -> T {
        for attempt in 0..<pollLimit {
            let value = try decode(type, try await post(url, payload: nil).body)
            if done(value) { return value }
            if attempt < pollLimit - 1 { try await Task.sleep(for: pollInterval) }
        }
        throw Problem(type: "timeout", detail: "\(url) did not reach a final state.")
    }

    // MARK: - Requests

    struct Reply {
        var status: Int
        var headers: HTTPHeaders
        var body: Data
    }

    private func loadDirectory() async throws -> Directory {
        if let directory { return directory }
        let reply = try await send(HTTPClientRequest(url: directoryURL.absoluteString))
        guard reply.status == 200 else {
            throw Problem(type: "directory", detail: "The ACME directory \(directoryURL) answered HTTP \(reply.status).", status: reply.status)
        }
        let loaded = try decode(Directory.self, reply.body)
        directory = loaded
        return loaded
    }

    private func freshNonce() async throws -> String {
        if let nonce {
            self.nonce = nil
            return nonce
        }
        var request = HTTPClientRequest(url: try await loadDirectory().newNonce)
        request.method = .HEAD
        let reply = try await send(request)
        guard let value = reply.headers.first(name: "Replay-Nonce") else {
            throw Problem(type: "malformed-response", detail: "newNonce answered without a Replay-Nonce header.")
        }
        return value
    }

    /// A JWS-signed POST; `payload` nil is a POST-as-GET.
    private func post(_ url: String, payload: Any?, useJWK: Bool = false) async throws -> Reply {
        var attempts = 0
        while true {
            attempts += 1
            var protected: [String: Any] = ["alg": "ES256", "nonce": try await freshNonce(), "url": url]
            if useJWK || accountURL == nil {
                protected["jwk"] = jwk
            } else {
                protected["kid"] = accountURL!
            }
            let protectedPart = Self.base64URL(try JSONSerialization.data(withJSONObject: protected, options: [.sortedKeys]))
            let payloadPart = try payload.map { Self.base64URL(try JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys])) } ?? ""
            let signature = try key.signature(for: Data("\(protectedPart).\(payloadPart)".utf8))
            let body = try JSONSerialization.data(withJSONObject: [
                "protected": protectedPart, "payload": payloadPart, "signature": Self.base64URL(signature.rawRepresentation),
            ])
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/jose+json")
            request.body = .bytes(ByteBuffer(data: body))
            let reply = try await send(request)
            if reply.status < 400 { return reply }
            let problem = try? JSONDecoder().decode(ProblemDocument.self, from: reply.body)
            if problem?.type == "urn:ietf:params:acme:error:badNonce", attempts < 5 { continue }
            throw Problem(type: problem?.type ?? "http-\(reply.status)", detail: problem?.detail ?? "HTTP \(reply.status) from \(url)", status: reply.status)
        }
    }

    private func send(_ request: HTTPClientRequest) async throws -> Reply {
        var request = request
        request.headers.add(name: "User-Agent", value: "Tidings-ACME/1")
        let response = try await http.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        if let value = response.headers.first(name: "Replay-Nonce") { nonce = value }
        return Reply(status: Int(response.status.code), headers: response.headers, body: Data(buffer: body))
    }

    private func decode<T: Decodable>(_ type: T.Type, _ data: Data) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch {
            throw Problem(type: "malformed-response", detail: "The CA's answer is not a valid \(type): \(error).")
        }
    }

    // MARK: - Keys and encodings

    /// The account key as a JWK (RFC 7517), members in the order RFC 7638 hashes them.
    private var jwk: [String: String] {
        let raw = key.publicKey.rawRepresentation  // x || y, 32 bytes each
        return ["crv": "P-256", "kty": "EC", "x": Self.base64URL(raw.prefix(32)), "y": Self.base64URL(raw.suffix(32))]
    }

    /// RFC 7638 thumbprint of the account key, base64url.
    private var thumbprint: String {
        let members = jwk
        let canonical = #"{"crv":"\#(members["crv"]!)","kty":"\#(members["kty"]!)","x":"\#(members["x"]!)","y":"\#(members["y"]!)"}"#
        return Self.base64URL(Data(SHA256.hash(data: Data(canonical.utf8))))
    }

    static func certificateSigningRequest(names: [String], key: P256.Signing.PrivateKey) throws -> [UInt8] {
        let alternativeNames = SubjectAlternativeNames(names.map { name in
            if let octets = IPAddressText.parse(name) {
                return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(octets)))
            }
            return .dnsName(name)
        })
        var attributes = CertificateSigningRequest.Attributes()
        attributes.insert(try .init(ExtensionRequest(extensions: try Certificate.Extensions { alternativeNames })))
        let request = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName(names.first ?? "") },
            privateKey: Certificate.PrivateKey(key), attributes: attributes, signatureAlgorithm: .ecdsaWithSHA256
        )
        var serializer = DER.Serializer()
        try serializer.serialize(request)
        return serializer.serializedBytes
    }

    static func isIPAddress(_ name: String) -> Bool { IPAddressText.parse(name) != nil }

    static func base64URL<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}
