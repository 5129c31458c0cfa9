import Foundation
import Testing
import TidingsApp
import TidingsCrypto
import TidingsDomain

/// Marketing mail through a real SMTP server (aiosmtpd): `List-Unsubscribe` and
/// `List-Unsubscribe-Post` signed by DKIM (verified by dkimpy), `{{ unsubscribe_link }}`
/// rendered, transactional mail left without the headers, and no marketing message sent to a
/// contact who unsubscribed after it was queued.
@Suite("Marketing delivery")
struct MarketingDeliveryTests {
    /// The `h=` tags of the message's DKIM signatures, lowercased.
    static func signedHeaders(_ fields: [String: [String]]) -> [[String]] {
        (fields["dkim-signature"] ?? []).map { signature in
            let tags = signature.replacingOccurrences(of: " ", with: "").split(separator: ";")
            let h = tags.first { $0.hasPrefix("h=") }.map { $0.dropFirst(2) } ?? ""
            return h.split(separator: ":").map { $0.lowercased() }
        }
    }

    static var newsletter: [String: Any] { [
        "slug": "newsletter", "subject": "News", "from": "Acme <hello@acme.test>",
        "html": "<p>Hello.</p><p><a href=\"{{ unsubscribe_link }}\">Unsubscribe or choose topics</a></p>",
    ] }

    @Test("Marketing mail carries List-Unsubscribe (one-click HTTPS, mailto) and List-Unsubscribe-Post under DKIM; transactional mail does not", arguments: TestBackend.all)
    func headers(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await withAPI(backend) { api, tidings in
                let setup = try await MessagesAPITests.setUp(api, tidings, peer: peer)
                let key = setup.workspace.key
                let workspaceId = setup.workspace.id
                #expect(try await api.post("/v1/templates", key: key, json: Self.newsletter).status == .created)
                let topic = try await api.post("/v1/topics", key: key, json: ["slug": "news", "name": "Product news"])
                let messageId = try await tidings.queueMarketing(
                    workspaceId: workspaceId, email: "ada@example.com", templateSlug: "newsletter", topicId: topic.json["id"] as? String
                )
                #expect(try await tidings.deliveries.drain() == 1)
                #expect(try await MessagesAPITests.status(of: messageId, api, key: key) == "delivered")
                let received = try #require(peer.received().first)
                let fields = headerFields(received.text)

                let listUnsubscribe = try #require(fields["list-unsubscribe"]?.first)
                let publicURL = tidings.configuration.publicURL
                let pattern = #/^<(?<https>[^>]+)/u/(?<token>[A-Za-z0-9_-]+)/one-click>, <mailto:unsubscribe@acme\.test\?subject=unsubscribe-(?<again>[A-Za-z0-9_-]+)>$/#
                let match = try #require(listUnsubscribe.wholeMatch(of: pattern), "\(listUnsubscribe)")
                #expect(String(match.https) == publicURL)
                #expect(match.token == match.again)
                #expect(fields["list-unsubscribe-post"] == ["List-Unsubscribe=One-Click"])
                // The token names this contact and this message, under the workspace's keys.
                let vault = try await tidings.keyring.vault(for: workspaceId)
                let token = try #require(UnsubscribeToken.verify(String(match.token), with: vault))
                #expect(token.messageId == messageId && token.workspaceId == workspaceId)
                #expect(try await api.get("/u/\(match.token)", key: nil).status == .ok)
                // The body's link is the preference page of the same token.
                let body = received.text.replacingOccurrences(of: "=\r\n", with: "").replacingOccurrences(of: "=3D", with: "=")
                #expect(body.contains("\(publicURL)/u/\(match.token)\""), "\(body)")

                // Both headers are signed, and the signatures verify.
                let signed = Self.signedHeaders(fields)
                #expect(signed.count == 2 && signed.allSatisfy { $0.contains("list-unsubscribe") && $0.contains("list-unsubscribe-post") }, "\(signed)")
                #expect(try await dkimVerify(received.bytes, records: setup.dnsRecords) == [true, true])

                // Transactional mail from the same template: the link renders, the headers do not appear.
                let api1 = try await api.post("/v1/messages", key: key, json: ["rcpt": "bob@example.com", "templateSlug": "newsletter"])
                let apiId = try #require(api1.json["id"] as? String)
                #expect(try await tidings.deliveries.drain() == 1)
                let transactional = try #require(peer.received().last)
                let transactionalFields = headerFields(transactional.text)
                #expect(transactionalFields["list-unsubscribe"] == nil && transactionalFields["list-unsubscribe-post"] == nil)
                let bobToken = try await tidings.unsubscribeToken(workspaceId: workspaceId, email: "bob@example.com", messageId: apiId)
                let transactionalBody = transactional.text.replacingOccurrences(of: "=\r\n", with: "").replacingOccurrences(of: "=3D", with: "=")
                #expect(transactionalBody.contains("\(publicURL)/u/\(bobToken)\""))
                #expect(try await dkimVerify(transactional.bytes, records: setup.dnsRecords) == [true, true])
            }
        }
    }

    @Test("A queued marketing message to a contact who unsubscribed before delivery is cancelled, not sent; transactional mail still goes", arguments: TestBackend.all)
    func unsubscribedBeforeDelivery(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await withAPI(backend) { api, tidings in
                let setup = try await MessagesAPITests.setUp(api, tidings, peer: peer)
                let key = setup.workspace.key
                let workspaceId = setup.workspace.id
                _ = try await api.post("/v1/templates", key: key, json: Self.newsletter)
                let news = try #require(try await api.post("/v1/topics", key: key, json: ["slug": "news"]).json["id"] as? String)
                _ = try await api.post("/v1/topics", key: key, json: ["slug": "tips"])
                var queued: [String: String] = [:]
                for email in ["ada@example.com", "bob@example.com", "carol@example.com", "dan@example.com"] {
                    // Dan's message has no topic; the others are sent under `news`.
                    queued[email] = try await tidings.queueMarketing(
                        workspaceId: workspaceId, email: email, templateSlug: "newsletter", topicId: email.hasPrefix("dan") ? nil : news
                    )
                }
                // After queueing: Ada leaves `news`, Carol leaves everything, Bob and Dan leave only `tips`.
                _ = try await api.request(.patch, "/v1/contacts/ada@example.com/subscriptions", key: key, json: ["topics": [["slug": "news", "subscribed": false]]])
                _ = try await api.request(.patch, "/v1/contacts/carol@example.com/subscriptions", key: key, json: ["status": "unsubscribed"])
                for email in ["bob@example.com", "dan@example.com"] {
                    _ = try await api.request(.patch, "/v1/contacts/\(email)/subscriptions", key: key, json: ["topics": [["slug": "tips", "subscribed": false]]])
                }

                #expect(try await tidings.deliveries.drain() == 4)
                #expect(Set(peer.received().flatMap(\.recipients)) == ["bob@example.com", "dan@example.com"])
                for email in ["ada@example.com", "carol@example.com"] {
                    let message = try await api.get("/v1/messages/\(queued[email]!)", key: key)
                    #expect(message.json["status"] as? String == "cancelled", "\(message.body)")
                    let last = try #require((message.json["timeline"] as? [[String: Any]])?.last)
                    #expect(last["status"] as? String == "cancelled" && last["reason"] as? String == "unsubscribed", "\(last)")
                }
                #expect(try await tidings.deliveries.drain() == 0, "cancelled messages leave the queue")
                let audited = try await tidings.audit.list(workspaceId: workspaceId, filter: .init(action: "message.cancelled"), cursor: nil, limit: 10)
                #expect(Set(audited.items.compactMap(\.change.targetId)) == [queued["ada@example.com"]!, queued["carol@example.com"]!])
                #expect(audited.items.allSatisfy { $0.actor.kind == .system && $0.change.summary["reason"] == .string("unsubscribed") })

                // Transactional mail ignores subscriptions.
                let receipt = try await api.post("/v1/messages", key: key, json: ["rcpt": "carol@example.com", "templateSlug": "welcome"])
                #expect(receipt.json["status"] as? String == "queued")
                #expect(try await tidings.deliveries.drain() == 1)
                #expect(peer.received().last?.recipients == ["carol@example.com"])
            }
        }
    }
}
