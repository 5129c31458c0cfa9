import Foundation
import SQLKit
import Testing
import TidingsApp
import TidingsDomain
import TidingsMail

@Suite("Sending domains API")
struct DomainsAPITests {
    @Test("A domain gets RSA and Ed25519 DKIM keys; the API gives out records, never private keys", arguments: TestBackend.all)
    func lifecycle(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let created = try await api.post("/v1/domains", key: workspace.key, json: ["domain": " Acme.TEST. "])
            #expect(created.status == .created, "\(created.body)")
            #expect(created.json["domain"] as? String == "acme.test")
            let records = try #require(created.json["dnsRecords"] as? [[String: String]])
            let purposes: [String] = records.map { record in String((record["purpose"] ?? "").prefix { $0 != " " }) }
            #expect(purposes == ["dkim", "dkim-ed25519", "spf", "dmarc"])
            let dkim = records[0]
            #expect(dkim["type"] == "TXT")
            #expect(dkim["name"]?.hasSuffix("r._domainkey.acme.test") == true)
            #expect(dkim["value"]?.hasPrefix("v=DKIM1; k=rsa; p=MIIBIjAN") == true)
            #expect(records[1]["value"]?.hasPrefix("v=DKIM1; k=ed25519; p=") == true)
            #expect(records[3]["name"] == "_dmarc.acme.test")
            #expect(!created.body.contains("PRIVATE"), "no private key in the answer")

            let fetched = try await api.get("/v1/domains/acme.test", key: workspace.key)
            #expect(fetched.json["dnsRecords"] as? [[String: String]] == records, "the same records every time")
            #expect(try await api.get("/v1/domains", key: workspace.key).data.count == 1)

            // The keys sign: a message signed with them verifies against the records given out.
            let keys = try await tidings.domains.signingKeys(workspaceId: workspace.id, domain: "acme.test")
            #expect(keys.map(\.dnsRecord) == [records[0]["value"], records[1]["value"]])

            // Private keys are sealed at rest.
            let stored = try await tidings.database.read { db in
                try await db.raw("SELECT private_key_sealed FROM dkim_keys").all().map { try $0.decode(column: "private_key_sealed", as: String.self) }
            }
            #expect(stored.count == 2 && stored.allSatisfy { !$0.contains("PRIVATE KEY") })

            #expect(try await api.post("/v1/domains", key: workspace.key, json: ["domain": "acme.test"]).errorCode == "domain_exists")
            #expect(try await api.delete("/v1/domains/acme.test", key: workspace.key).status == .noContent)
            #expect(try await api.get("/v1/domains/acme.test", key: workspace.key).errorCode == "domain_not_found")
            #expect(try await tidings.domains.signingKeys(workspaceId: workspace.id, domain: "acme.test").isEmpty)
            let audited = try await tidings.audit.list(workspaceId: workspace.id, filter: .init(action: "domain.*"), cursor: nil, limit: 10, oldestFirst: true)
            #expect(audited.items.map(\.change.action) == ["domain.created", "domain.deleted"])
        }
    }

    @Test("Bad domains are a 422 naming the problem; domains are admin-only and per workspace", arguments: TestBackend.all)
    func validationAndSeparation(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace(name: "One")
            let other = try await tidings.makeWorkspace(name: "Two")
            for bad in ["localhost", "-acme.test", "acme..test", "acme.123", "ä.test", String(repeating: "a", count: 64) + ".test"] {
                let reply = try await api.post("/v1/domains", key: workspace.key, json: ["domain": bad])
                #expect(reply.errorCode == "invalid_domain" && reply.errorField == "domain", "\(bad): \(reply.body)")
            }
            #expect(try await api.post("/v1/domains", key: workspace.key, json: ["domain": "acme.test", "x": 1]).errorCode == "unknown_field")
            #expect(try await api.post("/v1/domains", key: workspace.key, json: ["domain": "acme.test"]).status == .created)
            #expect(try await api.get("/v1/domains/acme.test", key: other.key).status == .notFound)
            #expect(try await api.delete("/v1/domains/acme.test", key: other.key).status == .notFound)
            #expect(try await api.post("/v1/domains", key: other.key, json: ["domain": "acme.test"]).status == .created, "another workspace may add it too")
            let writer = try await api.post("/v1/api-keys", key: workspace.key, json: ["name": "w", "scopes": ["templates:write"]])
            let writerKey = try #require(writer.json["secret"] as? String)
            #expect(try await api.get("/v1/domains", key: writerKey).errorCode == "insufficient_scope")
        }
    }
}
