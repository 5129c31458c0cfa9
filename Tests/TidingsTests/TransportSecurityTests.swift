import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import TidingsDomain
import TidingsTLS
@testable import TidingsApp
@testable import TidingsHTTP

/// The plain-HTTP port and the HTTPS port's headers, through the real router (T2.1).
@Suite("Transport security")
struct TransportSecurityTests {
    /// Runs `body` with a client of the plain-HTTP listener and one of the HTTPS listener.
    private func withListeners(
        _ backend: TestBackend, environment: [String: String] = [:], challenges: ACMEChallenges = ACMEChallenges(),
        _ body: @Sendable (_ plain: TestClient, _ https: TestClient, _ tidings: Tidings) async throws -> Void
    ) async throws {
        try await withTidings(backend, environment: environment) { tidings in
            let plain = Application(router: try tidings.makeRouter(transport: tidings.transport(
                .plainHTTP, httpsOrigin: { "https://mail.acme.test" }, challenges: challenges
            )))
            let https = Application(router: try tidings.makeRouter(transport: tidings.transport(.https)))
            try await plain.test(.router) { plainClient in
                try await https.test(.router) { httpsClient in
                    try await body(TestClient(client: plainClient), TestClient(client: httpsClient), tidings)
                }
            }
        }
    }

    private func createKey(_ api: TestClient, owner: String, name: String) async throws -> (id: String, secret: String) {
        let reply = try await api.post("/v1/api-keys", key: owner, json: ["name": name, "scopes": ["contacts:write"]])
        try #require(reply.status == .created, "\(reply.body)")
        return (try #require(reply.json["id"] as? String), try #require(reply.json["secret"] as? String))
    }

    @Test("An API key sent over plain HTTP is refused, revoked, audited and flagged in the key listing", arguments: TestBackend.all)
    func exposedKeyIsRevoked(backend: TestBackend) async throws {
        try await withListeners(backend) { plain, https, tidings in
            let workspace = try await tidings.makeWorkspace()
            let key = try await createKey(https, owner: workspace.key, name: "CRM")

            let refused = try await plain.post("/v1/contacts", key: key.secret, json: ["email": "ada@acme.test"])
            #expect(refused.status == .forbidden)
            #expect(refused.errorCode == "https_required")
            #expect(((refused.json["error"] as? [String: Any])?["message"] as? String)?.contains("https://mail.acme.test") == true)
            #expect(((refused.json["error"] as? [String: Any])?["message"] as? String)?.contains("revoked") == true)
            // Nothing of the request was acted on, and the key no longer works anywhere.
            #expect(try await https.get("/v1/contacts/ada@acme.test", key: workspace.key).status == .notFound)
            #expect(try await https.get("/v1/contacts", key: key.secret).status == .unauthorized)

            let listed = try await https.get("/v1/api-keys/\(key.id)", key: workspace.key)
            #expect(listed.json["status"] as? String == "revoked")
            #expect(listed.json["exposedAt"] is String)
            let warnings = try #require(listed.json["warnings"] as? [String])
            #expect(warnings.count == 1 && warnings[0].contains("plain HTTP") && warnings[0].contains("revoked"))
            let owner = try await https.get("/v1/api-keys", key: workspace.key)
            let ownerEntry = (owner.json["data"] as? [[String: Any]])?.first { $0["id"] as? String != key.id }
            #expect((ownerEntry?["warnings"] as? [String])?.isEmpty == true, "keys never sent in the clear carry no warning")

            let audit = try await https.get("/v1/audit-events?limit=50", key: workspace.key)
            let events = (audit.json["data"] as? [[String: Any]]) ?? []
            let exposed = try #require(events.first { $0["action"] as? String == "api_key.exposed" })
            #expect((exposed["target"] as? [String: Any])?["id"] as? String == key.id)
            #expect(events.contains { $0["action"] as? String == "api_key.revoked" })
        }
    }

    @Test("With automatic revocation off, an exposed key keeps working but is flagged", arguments: [TestBackend.sqlite])
    func exposedKeyMayStayActive(backend: TestBackend) async throws {
        try await withListeners(backend, environment: ["TIDINGS_REVOKE_EXPOSED_KEYS": "false"]) { plain, https, tidings in
            let workspace = try await tidings.makeWorkspace()
            let key = try await createKey(https, owner: workspace.key, name: "Legacy")
            let refused = try await plain.get("/v1/contacts", key: key.secret)
            #expect(refused.status == .forbidden)
            #expect(((refused.json["error"] as? [String: Any])?["message"] as? String)?.contains("rotate") == true)
            #expect(try await https.get("/v1/contacts", key: key.secret).status == .ok)
            let listed = try await https.get("/v1/api-keys/\(key.id)", key: workspace.key)
            #expect(listed.json["status"] as? String == "active" && listed.json["exposedAt"] is String)
            #expect((listed.json["warnings"] as? [String])?.first?.contains("Rotate or revoke") == true)
        }
    }

    @Test("A wrong key over plain HTTP is refused without touching any key", arguments: [TestBackend.sqlite])
    func invalidKeyOverPlainHTTP(backend: TestBackend) async throws {
        try await withListeners(backend) { plain, https, tidings in
            let workspace = try await tidings.makeWorkspace()
            for header in ["Bearer tdg_notakey", "Basic dXNlcjpwYXNz"] {
                let reply = try await plain.client.execute(uri: "/v1/contacts", method: .get, headers: [.authorization: header])
                #expect(reply.status == .forbidden)
            }
            let keys = try await https.get("/v1/api-keys", key: workspace.key)
            #expect((keys.json["data"] as? [[String: Any]])?.allSatisfy { $0["exposedAt"] is NSNull } == true)
        }
    }

    @Test("Everything else on the plain-HTTP port is a 308 to the same path on HTTPS", arguments: [
        ("GET", "/healthz", "https://mail.acme.test/healthz"),
        ("GET", "/login?next=%2Fkeys&x=%20y", "https://mail.acme.test/login?next=%2Fkeys&x=%20y"),
        ("POST", "/v1/events", "https://mail.acme.test/v1/events"),
        ("GET", "/no/such/page", "https://mail.acme.test/no/such/page"),
    ])
    func plainHTTPRedirects(method: String, path: String, location: String) async throws {
        try await withListeners(.sqlite) { plain, _, _ in
            let reply = try await plain.client.execute(uri: path, method: HTTPRequest.Method(method)!, headers: [:])
            #expect(reply.status == .permanentRedirect)
            #expect(reply.headers[.location] == location)
            #expect(reply.headers[TransportSecurity.hstsHeader] == nil, "HSTS over plain HTTP means nothing")
        }
    }

    @Test("The plain-HTTP port answers pending ACME HTTP-01 challenges and nothing else under that path")
    func acmeChallenges() async throws {
        let challenges = ACMEChallenges()
        challenges.publish(token: "tok-123_ABC", keyAuthorization: "tok-123_ABC.thumbprint")
        try await withListeners(.sqlite, challenges: challenges) { plain, _, _ in
            let answered = try await plain.client.execute(uri: "/.well-known/acme-challenge/tok-123_ABC", method: .get, headers: [:])
            #expect(answered.status == .ok && String(buffer: answered.body) == "tok-123_ABC.thumbprint")
            let unknown = try await plain.client.execute(uri: "/.well-known/acme-challenge/other", method: .get, headers: [:])
            #expect(unknown.status == .notFound)
            challenges.withdraw(token: "tok-123_ABC")
            let withdrawn = try await plain.client.execute(uri: "/.well-known/acme-challenge/tok-123_ABC", method: .get, headers: [:])
            #expect(withdrawn.status == .notFound)
        }
    }

    @Test("HTTPS responses carry HSTS for two years; pages also carry CSP, nosniff, frame-ancestors and Referrer-Policy")
    func httpsHeaders() async throws {
        try await withListeners(.sqlite) { _, https, tidings in
            let workspace = try await tidings.makeWorkspace()
            for reply in [
                try await https.get("/healthz", key: nil),
                try await https.get("/v1/contacts", key: workspace.key),
                try await https.get("/v1/contacts", key: "tdg_wrong"),
                try await https.client.execute(uri: "/login", method: .get, headers: [:]).asReply,
            ] {
                #expect(reply.headers[TransportSecurity.hstsHeader] == "max-age=63072000", "\(reply.status)")
            }
            let page = try await https.client.execute(uri: "/login", method: .get, headers: [:])
            let policy = try #require(page.headers[.contentSecurityPolicy])
            #expect(policy.contains("default-src 'none'") && policy.contains("frame-ancestors 'none'"))
            #expect(page.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
            #expect(page.headers[HTTPField.Name("Referrer-Policy")!] == "no-referrer")
        }
    }

    @Test("Forwarding headers count only from trusted proxies")
    func trustedProxies() {
        let transport = TransportSecurity(listener: .plainHTTP, trustedProxies: [IPNetwork("10.0.0.0/8")!, IPNetwork("fd00::/8")!])
        let forwarded: HTTPFields = [
            HTTPField.Name("X-Forwarded-For")!: "198.51.100.7, 10.1.2.3", HTTPField.Name("X-Forwarded-Proto")!: "https",
        ]
        #expect(transport.clientAddress(peer: "10.9.9.9", headers: forwarded) == "198.51.100.7")
        #expect(transport.arrivedOverTLS(peer: "10.9.9.9", headers: forwarded))
        #expect(transport.arrivedOverTLS(peer: "fd00::5", headers: forwarded))
        // Anyone else's headers are their own claims.
        #expect(transport.clientAddress(peer: "203.0.113.5", headers: forwarded) == "203.0.113.5")
        #expect(!transport.arrivedOverTLS(peer: "203.0.113.5", headers: forwarded))
        #expect(!transport.arrivedOverTLS(peer: nil, headers: forwarded))
        let plainProto: HTTPFields = [HTTPField.Name("X-Forwarded-Proto")!: "http"]
        #expect(!transport.arrivedOverTLS(peer: "10.9.9.9", headers: plainProto))
        #expect(TransportSecurity(listener: .https).arrivedOverTLS(peer: nil, headers: [:]))
        #expect(!TransportSecurity(listener: .developmentPlainHTTP).arrivedOverTLS(peer: "10.0.0.1", headers: forwarded))
    }

    @Test("CIDR networks match the addresses inside them, IPv4-mapped IPv6 included")
    func networks() throws {
        let v4 = try #require(IPNetwork("192.0.2.0/24"))
        #expect(v4.contains("192.0.2.200") && !v4.contains("192.0.3.1") && v4.contains("::ffff:192.0.2.9"))
        let v6 = try #require(IPNetwork("2001:db8:abcd::/48"))
        #expect(v6.contains("2001:db8:abcd:12::1") && !v6.contains("2001:db8:abce::1") && !v6.contains("192.0.2.1"))
        #expect(try #require(IPNetwork("198.51.100.7")).contains("198.51.100.7"))
        #expect(!(try #require(IPNetwork("198.51.100.7")).contains("198.51.100.8")))
        #expect(try #require(IPNetwork("0.0.0.0/0")).contains("8.8.8.8"))
        for bad in ["", "10.0.0.0/33", "10.0.0/8", "proxy.internal", "2001:db8::/129", "10.0.0.0/-1", "1.2.3.4/8x"] {
            #expect(IPNetwork(bad) == nil, "\(bad)")
        }
    }
}

extension TestResponse {
    /// As the JSON test client's reply, for header checks.
    var asReply: TestClient.Reply {
        TestClient.Reply(status: status, headers: headers, body: String(buffer: body))
    }
}
