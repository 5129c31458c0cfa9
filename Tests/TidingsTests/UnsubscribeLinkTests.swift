import Foundation
import Testing
import TidingsApp
@testable import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// Unsubscribe links: the token (unforgeable, bound to its workspace), the hosted preference
/// page, and RFC 8058 one-click POSTs from programs that hold no cookies.
@Suite("Unsubscribe links")
struct UnsubscribeLinkTests {
    static func vault(_ scope: String) -> Vault {
        Vault(scope: scope, current: DataKey.generate(id: "dk_test"), keys: [], index: BlindIndex(key: SymmetricKeyMaterial.random())) { id in
            throw SealingError.unknownKey(id)
        }
    }

    @Test("A token names its workspace, contact and message; any altered, forged or foreign token is refused")
    func tokens() throws {
        let workspaceId = Identifier.make("ws"), contactId = Identifier.make("ct"), messageId = Identifier.make("msg")
        let vault = Self.vault(workspaceId)
        let token = UnsubscribeToken(workspaceId: workspaceId, contactId: contactId, messageId: messageId)
        let text = token.encode(with: vault)
        #expect(text.count == 88 && text.utf8.allSatisfy { $0 == 0x2D || $0 == 0x5F || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) })
        #expect(UnsubscribeToken.verify(text, with: vault) == token)
        #expect(UnsubscribeToken.claimedWorkspace(text) == workspaceId)
        #expect(!text.contains(contactId) && !text.contains(messageId))
        // Ids in another form, and a link without a message, survive the round trip.
        let odd = UnsubscribeToken(workspaceId: workspaceId, contactId: "legacy-contact-7", messageId: nil)
        #expect(UnsubscribeToken.verify(odd.encode(with: vault), with: vault) == odd)

        // Every single character changed breaks it.
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        var characters = Array(text)
        for index in characters.indices {
            let original = characters[index]
            characters[index] = alphabet[(alphabet.firstIndex(of: original)! + 7) % alphabet.count]
            #expect(UnsubscribeToken.verify(String(characters), with: vault) == nil, "changed at \(index)")
            characters[index] = original
        }
        #expect(UnsubscribeToken.verify(String(text.dropLast()), with: vault) == nil)
        #expect(UnsubscribeToken.verify(text + "A", with: vault) == nil)
        #expect(UnsubscribeToken.verify("", with: vault) == nil && UnsubscribeToken.claimedWorkspace("!!") == nil)

        // Another workspace's keys refuse it; a token claiming that workspace but signed with
        // these keys is refused by its real keys.
        let otherId = Identifier.make("ws")
        let other = Self.vault(otherId)
        #expect(UnsubscribeToken.verify(text, with: other) == nil)
        let impostor = Vault(scope: otherId, current: vault.current, keys: [], index: vault.index) { id in throw SealingError.unknownKey(id) }
        let forged = UnsubscribeToken(workspaceId: otherId, contactId: contactId, messageId: messageId).encode(with: impostor)
        #expect(UnsubscribeToken.claimedWorkspace(forged) == otherId)
        #expect(UnsubscribeToken.verify(forged, with: other) == nil)

        // Identifiers pack into 16 bytes and back.
        for _ in 0..<100 {
            let id = Identifier.make("ct")
            #expect(Identifier.bytes(of: id, prefix: "ct").flatMap { Identifier.string(prefix: "ct", bytes: $0) } == id)
        }
        #expect(Identifier.bytes(of: "ct_" + String(repeating: "Z", count: 26), prefix: "ct") == nil, "more than 128 bits")
        #expect(Identifier.bytes(of: contactId.lowercased(), prefix: "ct") == nil)
        let next = try #require(Identifier.successor(of: contactId, prefix: "ct"))
        #expect(next > contactId && Identifier.successor(of: next, prefix: "ct")! > next)
    }

    @Test("The preference page shows the masked address and a labelled checkbox per topic; saving changes subscriptions, audited", arguments: TestBackend.all)
    func preferencePage(backend: TestBackend) async throws {
        // A clock that stands still: the history keeps its order within one millisecond.
        try await withAPI(backend, clock: TestClock()) { api, tidings in
            let workspace = try await tidings.makeWorkspace(name: "Acme <Shop>")
            let key = workspace.key
            _ = try await api.post("/v1/topics", key: key, json: ["slug": "news", "name": "Product news", "description": "New features, monthly."])
            _ = try await api.post("/v1/topics", key: key, json: ["slug": "tips", "name": "Tips"])
            _ = try await api.post("/v1/contacts", key: key, json: ["email": "ada.lovelace@example.com"])
            let token = try await tidings.unsubscribeToken(workspaceId: workspace.id, email: "ada.lovelace@example.com", messageId: nil)

            let page = try await api.get("/u/\(token)", key: nil)
            #expect(page.status == .ok, "\(page.body)")
            #expect(page.headers[.contentType] == "text/html; charset=utf-8")
            #expect(page.headers[.contentSecurityPolicy]?.contains("default-src 'none'") == true)
            #expect(page.headers[.setCookie] == nil)
            #expect(page.body.contains("a***@example.com") && !page.body.contains("ada.lovelace"), "the address is masked")
            #expect(page.body.contains("Acme &lt;Shop&gt;"), "the workspace's name, escaped")
            #expect(page.body.contains("<legend>") && page.body.contains("<label for=\"topic-news\">Product news</label>"))
            #expect(page.body.contains("New features, monthly."))
            #expect(page.body.contains("name=\"unsubscribe_all\""))
            #expect(try await htmlProblems(page.body) == [])

            // Untick one topic and save.
            let form = "application/x-www-form-urlencoded"
            let saved = try await api.request(.post, "/u/\(token)", key: nil, body: "topics=news%2Ctips&topic.tips=on", contentType: form)
            #expect(saved.status == .ok && saved.body.contains("were saved"), "\(saved.body)")
            #expect(saved.body.contains("You no longer receive") && saved.body.contains("Product news"))
            #expect(try await htmlProblems(saved.body) == [])
            var subscriptions = try await api.get("/v1/contacts/ada.lovelace@example.com/subscriptions", key: key)
            #expect(subscriptions.json["status"] as? String == "partially_unsubscribed")
            #expect(SubscriptionsAPITests.topics(subscriptions) == ["news": false, "tips": true])
            let reloaded = try await api.get("/u/\(token)", key: nil)
            #expect(!reloaded.body.contains("name=\"topic.news\" value=\"on\" checked") && reloaded.body.contains("name=\"topic.tips\" value=\"on\" checked"))

            // Everything.
            _ = try await api.request(.post, "/u/\(token)", key: nil, body: "topics=news%2Ctips&topic.tips=on&unsubscribe_all=on", contentType: form)
            #expect(try await api.get("/v1/contacts/ada.lovelace@example.com", key: key).json["status"] as? String == "unsubscribed")
            #expect(try await api.get("/u/\(token)", key: nil).body.contains("name=\"unsubscribe_all\" value=\"on\" checked"))
            // And back, every topic ticked.
            _ = try await api.request(.post, "/u/\(token)", key: nil, body: "topics=news%2Ctips&topic.news=on&topic.tips=on", contentType: form)
            subscriptions = try await api.get("/v1/contacts/ada.lovelace@example.com/subscriptions", key: key)
            #expect(subscriptions.json["status"] as? String == "subscribed")
            #expect(try await api.get("/v1/contacts/ada.lovelace@example.com", key: key).json["status"] as? String == "active")

            let history = try await api.get("/v1/contacts/ada.lovelace@example.com/subscriptions/changes", key: key)
            #expect(history.data.map { $0["change"] as? String } == ["unsubscribed_topic", "unsubscribed_all", "resubscribed_all", "resubscribed_topic"])
            #expect(history.data.allSatisfy { $0["via"] as? String == "preference_page" })
            let audited = try await tidings.audit.list(workspaceId: workspace.id, filter: .init(), cursor: nil, limit: 50, oldestFirst: true)
            let changes = audited.items.filter { ["contact.topics_changed", "contact.unsubscribed", "contact.resubscribed"].contains($0.change.action) }
            #expect(changes.map(\.change.action) == ["contact.topics_changed", "contact.unsubscribed", "contact.resubscribed", "contact.topics_changed"])
            #expect(changes.allSatisfy { $0.actor.kind == .system && $0.actor.id == "preference_page" && $0.change.summary["via"] == .string("preference_page") })

            // A form that is not urlencoded is refused.
            let json = try await api.request(.post, "/u/\(token)", key: nil, json: ["unsubscribe_all": "on"])
            #expect(json.status == .unsupportedMediaType)
        }
    }

    @Test("Forged, altered and other workspaces' links answer the same plain 404 and change nothing", arguments: TestBackend.all)
    func forgedLinks(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let acme = try await tidings.makeWorkspace(name: "Acme")
            let other = try await tidings.makeWorkspace(name: "Other")
            _ = try await api.post("/v1/contacts", key: acme.key, json: ["email": "ada@example.com"])
            _ = try await api.post("/v1/contacts", key: other.key, json: ["email": "bob@example.com"])
            let genuine = try await tidings.unsubscribeToken(workspaceId: acme.id, email: "ada@example.com", messageId: nil)
            var altered = Array(genuine)
            altered[40] = altered[40] == "A" ? "B" : "A"
            let acmeVault = try await tidings.keyring.vault(for: acme.id)
            let otherVault = try await tidings.keyring.vault(for: other.id)
            let bobId = try #require(try await tidings.database.read { db in
                try await ContactRepository(db, vault: otherVault).findId(email: try EmailAddress("bob@example.com"))
            })
            // Acme's keys naming the other workspace's contact; and a token claiming the other
            // workspace, signed with Acme's keys.
            let crossContact = UnsubscribeToken(workspaceId: acme.id, contactId: bobId, messageId: nil).encode(with: acmeVault)
            let impostor = Vault(scope: other.id, current: acmeVault.current, keys: [], index: acmeVault.index) { id in throw SealingError.unknownKey(id) }
            let crossWorkspace = UnsubscribeToken(workspaceId: other.id, contactId: bobId, messageId: nil).encode(with: impostor)
            let nowhere = Identifier.make("ws")
            let unknownWorkspace = UnsubscribeToken(workspaceId: nowhere, contactId: bobId, messageId: nil).encode(with: Self.vault(nowhere))
            let bad = [String(altered), crossContact, crossWorkspace, unknownWorkspace, "nonsense", String(repeating: "A", count: 700)]
            var bodies = Set<String>()
            for token in bad {
                let page = try await api.get("/u/\(token)", key: nil)
                #expect(page.status == .notFound, "\(token)")
                bodies.insert(page.body)
                let saved = try await api.request(.post, "/u/\(token)", key: nil, body: "unsubscribe_all=on", contentType: "application/x-www-form-urlencoded")
                #expect(saved.status == .notFound)
                bodies.insert(saved.body)
                let oneClick = try await api.request(.post, "/u/\(token)/one-click", key: nil, body: "List-Unsubscribe=One-Click", contentType: "application/x-www-form-urlencoded")
                #expect(oneClick.status == .notFound)
                bodies.insert(oneClick.body)
            }
            #expect(bodies.count == 1, "one answer for every bad link: \(bodies)")
            #expect(try await api.get("/v1/contacts/ada@example.com", key: acme.key).json["status"] as? String == "active")
            #expect(try await api.get("/v1/contacts/bob@example.com", key: other.key).json["status"] as? String == "active")
            #expect(try await api.get("/u/\(genuine)", key: nil).status == .ok)

            // A deleted contact's link leads nowhere either.
            _ = try await api.delete("/v1/contacts/ada@example.com", key: acme.key)
            #expect(try await api.get("/u/\(genuine)", key: nil).status == .notFound)
        }
    }

    @Test("One-click over real HTTP without cookies leaves the message's topic, or everything, audited; a GET changes nothing", arguments: TestBackend.all)
    func oneClick(backend: TestBackend) async throws {
        try await withLiveAPI(backend) { api, port, tidings in
            let workspace = try await tidings.makeWorkspace()
            let key = workspace.key
            let news = try await api.post("/v1/topics", key: key, json: ["slug": "news", "name": "Product news"])
            let newsId = try #require(news.json["id"] as? String)
            _ = try await api.post("/v1/templates", key: key, json: ["slug": "digest", "subject": "Digest", "from": "hello@acme.test", "html": "<p>Hi</p>"])
            _ = try await api.post("/v1/email-servers", key: key, json: ["name": "relay", "host": "127.0.0.1", "port": 2525, "security": "none"])
            let withTopic = try await tidings.queueMarketing(workspaceId: workspace.id, email: "ada@example.com", templateSlug: "digest", topicId: newsId)
            let withoutTopic = try await tidings.queueMarketing(workspaceId: workspace.id, email: "bob@example.com", templateSlug: "digest", topicId: nil, originId: "auto_test")
            let adaToken = try await tidings.unsubscribeToken(workspaceId: workspace.id, email: "ada@example.com", messageId: withTopic)
            let bobToken = try await tidings.unsubscribeToken(workspaceId: workspace.id, email: "bob@example.com", messageId: withoutTopic)
            let base = "http://localhost:\(port)"

            // A scanner's GET shows the page and changes nothing.
            let fetched = try await curlRequest(["\(base)/u/\(adaToken)/one-click"])
            #expect(fetched.status == 200 && fetched.body.contains("Email preferences"), "\(fetched.body)")
            #expect(fetched.body.contains("The email you came from was about <strong>Product news</strong>"))
            // A POST without the RFC 8058 body changes nothing.
            let empty = try await curlRequest(["-X", "POST", "\(base)/u/\(adaToken)/one-click"])
            #expect(empty.status == 400)
            #expect(try await api.get("/v1/contacts/ada@example.com/subscriptions/changes", key: key).data.isEmpty)

            // The provider's POST: the message's topic is left.
            let clicked = try await curlRequest(["-X", "POST", "-H", "Content-Type: application/x-www-form-urlencoded", "--data", "List-Unsubscribe=One-Click", "\(base)/u/\(adaToken)/one-click"])
            #expect(clicked.status == 200 && clicked.headers["set-cookie"] == nil, "\(clicked)")
            #expect(clicked.headers["content-type"]?.hasPrefix("text/plain") == true && clicked.body.count < 100)
            let ada = try await api.get("/v1/contacts/ada@example.com/subscriptions", key: key)
            #expect(ada.json["status"] as? String == "partially_unsubscribed" && SubscriptionsAPITests.topics(ada) == ["news": false])
            // Again: nothing more happens.
            #expect(try await curlRequest(["-X", "POST", "--data", "List-Unsubscribe=One-Click", "\(base)/u/\(adaToken)/one-click"]).status == 200)
            let history = try await api.get("/v1/contacts/ada@example.com/subscriptions/changes", key: key)
            #expect(history.data.count == 1, "\(history.body)")
            let change = try #require(history.data.first)
            #expect(change["change"] as? String == "unsubscribed_topic" && change["topic"] as? String == "news" && change["via"] as? String == "one_click")
            #expect(change["messageId"] as? String == withTopic && change["originKind"] as? String == "announcement" && change["originId"] as? String == "ann_test")

            // A message without a topic: multipart, as some providers send it; everything is left.
            let multipart = try await curlRequest(["-X", "POST", "-F", "List-Unsubscribe=One-Click", "\(base)/u/\(bobToken)/one-click"])
            #expect(multipart.status == 200, "\(multipart)")
            #expect(try await api.get("/v1/contacts/bob@example.com", key: key).json["status"] as? String == "unsubscribed")

            let audited = try await tidings.audit.list(workspaceId: workspace.id, filter: .init(), cursor: nil, limit: 100, oldestFirst: true)
            let changes = audited.items.filter { ["contact.topics_changed", "contact.unsubscribed"].contains($0.change.action) }
            #expect(changes.map(\.change.action) == ["contact.topics_changed", "contact.unsubscribed"])
            #expect(changes.allSatisfy { $0.actor.id == "one_click" && $0.change.summary["via"] == .string("one_click") })
            #expect(changes[0].change.summary["message"] == .string(withTopic) && changes[0].change.summary["originId"] == .string("ann_test"))
            #expect(changes[1].change.summary["origin"] == .string("announcement") && changes[1].change.summary["originId"] == .string("auto_test"))
        }
    }
}
