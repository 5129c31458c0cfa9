import Foundation
import HTTPTypes
import SQLKit
import Testing
import TidingsCrypto
import TidingsDomain
import TidingsServices
import TidingsStorage
@testable import TidingsApp

/// Segments and announcements end to end: saved filters and their counts, the streamed
/// fan-out into the send queue, delivery to a real SMTP server, pause, resume, cancel, a
/// schedule, and a fan-out taken over by another worker after the first one stopped.
@Suite("Announcements and segments API")
struct AnnouncementsAPITests {
    /// Contacts: three pro (active), one pro who unsubscribed, one pro whose mailbox bounced,
    /// two free.
    static let pro = ["ada@example.com", "bob@example.com", "cy@example.com"]

    static func addAudience(_ api: TestClient, _ tidings: Tidings, workspace: TestWorkspace) async throws {
        for email in pro + ["dee@example.com", "eve@example.com"] {
            let reply = try await api.post("/v1/contacts", key: workspace.key, json: ["email": email, "plan": "pro", "seats": 3])
            try #require(reply.status == .created || reply.status == .ok, "\(reply.body)")
        }
        for email in ["fay@example.com", "gus@example.com"] {
            _ = try await api.post("/v1/contacts", key: workspace.key, json: ["email": email, "plan": "free", "seats": 1])
        }
        let unsubscribed = try await api.request(.patch, "/v1/contacts/dee@example.com/subscriptions", key: workspace.key, json: ["status": "unsubscribed"])
        try #require(unsubscribed.status == .ok, "\(unsubscribed.body)")
        try await setStatus("eve@example.com", .bounced, tidings, workspace: workspace)
    }

    static func setStatus(_ email: String, _ status: ContactStatus, _ tidings: Tidings, workspace: TestWorkspace) async throws {
        let vault = try await tidings.keyring.vault(for: workspace.id)
        try await TenantScope.with(.workspace(workspace.id)) {
            try await tidings.database.transaction { db in
                let contacts = ContactRepository(db, vault: vault)
                let id = try #require(try await contacts.findId(email: try EmailAddress(email)))
                try await contacts.setStatus(contactId: id, status, at: Date())
            }
        }
    }

    static func patch(_ api: TestClient, _ uri: String, key: String, json: Any) async throws -> TestClient.Reply {
        try await api.request(.patch, uri, key: key, json: json)
    }

    // MARK: Segments

    @Test("Segments are saved, read, changed and counted; bad filters are 4xx naming the path; a used segment stays", arguments: TestBackend.all)
    func segments(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await withAPI(backend) { api, tidings in
                let setup = try await MessagesAPITests.setUp(api, tidings, peer: peer)
                let key = setup.workspace.key
                try await Self.addAudience(api, tidings, workspace: setup.workspace)
                _ = try await api.post("/v1/events", key: key, json: ["email": "ada@example.com", "slug": "upgraded"])

                let created = try await api.post("/v1/segments", key: key, json: [
                    "name": " Pro customers ", "filter": ["match": "all", "conditions": [["attribute": "plan", "op": "eq", "value": "PRO"]]],
                ])
                #expect(created.status == .created, "\(created.body)")
                #expect(created.json["name"] as? String == "Pro customers")
                let id = try #require(created.json["id"] as? String)
                let count = try await api.get("/v1/segments/\(id)/count", key: key)
                #expect(count.status == .ok)
                #expect(count.json["contacts"] as? Int == 7)
                #expect(count.json["matching"] as? Int == 5)
                #expect(count.json["reachable"] as? Int == 3, "unsubscribed and bounced are not reachable: \(count.body)")

                // Events and nested groups: pro who upgraded, or anyone with more than 2 seats.
                let changed = try await Self.patch(api, "/v1/segments/\(id)", key: key, json: ["filter": [
                    "match": "any", "conditions": [
                        ["match": "all", "conditions": [["attribute": "plan", "op": "eq", "value": "pro"], ["event": "upgraded", "op": "did", "withinDays": 7]]],
                        ["attribute": "seats", "op": "gt", "value": 5],
                    ],
                ]])
                #expect(changed.status == .ok, "\(changed.body)")
                #expect(try await api.get("/v1/segments/\(id)/count", key: key).json["matching"] as? Int == 1)
                let read = try await api.get("/v1/segments/\(id)", key: key)
                #expect(((read.json["filter"] as? [String: Any])?["match"] as? String) == "any")
                #expect(try await api.get("/v1/segments", key: key).data.count == 1)

                let bad = try await api.post("/v1/segments", key: key, json: [
                    "name": "x", "filter": ["match": "all", "conditions": [["attribute": "plan", "op": "eq", "value": "a"], ["attribute": "plan", "op": "like", "value": "b"]]],
                ])
                #expect(bad.status == .unprocessableContent)
                #expect(bad.errorField == "filter.conditions[1].op", "\(bad.body)")
                let missing = try await api.post("/v1/segments", key: key, json: ["name": "x"])
                #expect(missing.status == .unprocessableContent && missing.errorField == "filter")
                let unknown = try await api.post("/v1/segments", key: key, json: ["name": "x", "filter": ["match": "all", "conditions": []], "colour": "red"])
                #expect(unknown.status.code / 100 == 4)
                #expect(try await api.get("/v1/segments/seg_nope", key: key).status == .notFound)

                // A filter may hold personal values: it is sealed at rest.
                let personal = try await api.post("/v1/segments", key: key, json: [
                    "name": "One person", "filter": ["match": "all", "conditions": [["attribute": "nickname", "op": "eq", "value": "zebracorn-4711"]]],
                ])
                #expect(personal.status == .created)
                let stored = try await tidings.adminDatabase.read { db in
                    try await db.raw("SELECT filter_sealed FROM segments").all().map { try $0.decode(column: "filter_sealed", as: String.self) }
                }
                #expect(stored.count == 2 && !stored.contains { $0.contains("zebracorn") })

                let announcement = try await api.post("/v1/announcements", key: key, json: ["name": "News", "templateSlug": "welcome", "segmentId": id])
                #expect(announcement.status == .created, "\(announcement.body)")
                let refused = try await api.delete("/v1/segments/\(id)", key: key)
                #expect(refused.status == .conflict && refused.errorCode == "segment_in_use")
                #expect(try await api.delete("/v1/segments/\(try #require(personal.json["id"] as? String))", key: key).status == .noContent)
                let audit = try await api.get("/v1/audit-events?action=segment.created", key: key)
                #expect(audit.status == .ok)
            }
        }
    }

    // MARK: Sending

    @Test("An announcement to a segment reaches exactly its reachable members, shows its progress and is audited; a critical notice also reaches the unsubscribed", arguments: TestBackend.all)
    func announcementToSegment(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await withAPI(backend) { api, tidings in
                let setup = try await MessagesAPITests.setUp(api, tidings, peer: peer)
                let key = setup.workspace.key
                try await Self.addAudience(api, tidings, workspace: setup.workspace)
                let segment = try await api.post("/v1/segments", key: key, json: [
                    "name": "Pro", "filter": ["match": "all", "conditions": [["attribute": "plan", "op": "eq", "value": "pro"]]],
                ])
                let segmentId = try #require(segment.json["id"] as? String)

                let draft = try await api.post("/v1/announcements", key: key, json: ["name": "Spring news", "templateSlug": "welcome", "segmentId": segmentId])
                #expect(draft.status == .created, "\(draft.body)")
                #expect(draft.json["status"] as? String == "draft")
                let id = try #require(draft.json["id"] as? String)
                #expect(try await tidings.fanOuts.drain() == 0, "a draft is not sent")

                let started = try await api.post("/v1/announcements/\(id)/send", key: key, json: [:])
                #expect(started.status == .accepted, "\(started.body)")
                #expect(started.json["status"] as? String == "sending")
                #expect(try await api.post("/v1/announcements/\(id)/send", key: key, json: [:]).errorCode == "not_draft")
                #expect(try await tidings.fanOuts.drain() == 1)

                var progress = try await api.get("/v1/announcements/\(id)", key: key)
                #expect(progress.json["status"] as? String == "sent", "\(progress.body)")
                let audience = try #require(progress.json["audience"] as? [String: Int])
                #expect(audience == ["considered": 7, "notInSegment": 2, "unsubscribed": 1, "messages": 4])
                var messages = try #require(progress.json["messages"] as? [String: Int])
                #expect(messages["queued"] == 3 && messages["suppressed"] == 1, "\(messages)")

                #expect(try await tidings.deliveries.drain() == 3)
                let received = try await peer.waitForMessages(3)
                #expect(Set(received.flatMap(\.recipients)) == Set(Self.pro))
                _ = try await tidings.fanOuts.drain()
                progress = try await api.get("/v1/announcements/\(id)", key: key)
                messages = try #require(progress.json["messages"] as? [String: Int])
                #expect(messages["sent"] == 3 && messages["queued"] == 0 && messages["suppressed"] == 1, "\(messages)")
                #expect(progress.json["finishedAt"] is String, "finished once every message is final")
                let list = try await api.get("/v1/messages?status=delivered", key: key)
                #expect(list.data.count == 3)

                let audit = try await api.get("/v1/audit-events?targetId=\(id)", key: key)
                let actions = Set(audit.data.compactMap { $0["action"] as? String })
                #expect(actions.isSuperset(of: ["announcement.created", "announcement.started", "announcement.queued", "announcement.finished"]), "\(actions)")

                // A critical notice needs admin, and reaches the unsubscribed contact but not the bounced one.
                let sender = try await api.post("/v1/api-keys", key: key, json: ["name": "Sender", "scopes": ["messages:send"]])
                let senderKey = try #require(sender.json["secret"] as? String)
                let forbidden = try await api.post("/v1/announcements", key: senderKey, json: ["name": "Outage", "templateSlug": "welcome", "critical": true])
                #expect(forbidden.status == .forbidden && forbidden.errorCode == "critical_requires_admin", "\(forbidden.body)")
                let critical = try await api.post("/v1/announcements", key: key, json: ["name": "Outage", "templateSlug": "welcome", "critical": true])
                let criticalId = try #require(critical.json["id"] as? String)
                _ = try await api.post("/v1/announcements/\(criticalId)/send", key: key, json: [:])
                _ = try await tidings.fanOuts.drain()
                let criticalProgress = try await api.get("/v1/announcements/\(criticalId)", key: key)
                #expect((criticalProgress.json["audience"] as? [String: Int])?["unsubscribed"] == 0)
                #expect((criticalProgress.json["messages"] as? [String: Int])?["queued"] == 6, "\(criticalProgress.body)")
                #expect(try await tidings.deliveries.drain() == 6)
                let all = try await peer.waitForMessages(9)
                #expect(all.flatMap(\.recipients).filter { $0 == "dee@example.com" }.count == 1)
                #expect(!all.flatMap(\.recipients).contains("eve@example.com"))
            }
        }
    }

    @Test("Bad announcement requests are 4xx naming the field", arguments: TestBackend.all)
    func badRequests(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await withAPI(backend) { api, tidings in
                let setup = try await MessagesAPITests.setUp(api, tidings, peer: peer)
                let key = setup.workspace.key
                let cases: [([String: Any], String, String)] = [
                    (["templateSlug": "welcome"], "name", "missing_field"),
                    (["name": "x", "templateSlug": "nope"], "templateSlug", "unknown_template"),
                    (["name": "x", "templateSlug": "welcome", "segmentId": "seg_missing"], "segmentId", "unknown_segment"),
                    (["name": "x", "templateSlug": "welcome", "topic": "no spaces please"], "topic", "unknown_topic"),
                    (["name": "x", "templateSlug": "welcome", "topic": "never-created"], "topic", "unknown_topic"),
                    (["name": "x", "templateSlug": "welcome", "sendAt": "2031-01-01T00:00:00Z"], "sendAt", "invalid_timestamp"),
                    (["name": "x", "templateSlug": "welcome", "critical": true, "topic": "news"], "topic", "critical_with_topic"),
                    (["name": "x", "templateSlug": "welcome", "audience": "all"], "audience", "unknown_field"),
                ]
                for (body, field, code) in cases {
                    let reply = try await api.post("/v1/announcements", key: key, json: body)
                    #expect(reply.status.code / 100 == 4, "\(body): \(reply.body)")
                    #expect(reply.errorField == field && reply.errorCode == code, "\(body): \(reply.body)")
                }
                #expect(try await api.get("/v1/announcements/ann_missing", key: key).status == .notFound)
                #expect(try await api.post("/v1/announcements/ann_missing/pause", key: key, json: [:]).status == .notFound)
                let draft = try await api.post("/v1/announcements", key: key, json: ["name": "x", "templateSlug": "welcome"])
                let id = try #require(draft.json["id"] as? String)
                #expect(try await api.post("/v1/announcements/\(id)/pause", key: key, json: [:]).errorCode == "not_pausable")
                #expect(try await api.post("/v1/announcements/\(id)/resume", key: key, json: [:]).errorCode == "not_paused")
                #expect(try await Self.patch(api, "/v1/announcements/\(id)", key: key, json: ["name": "Renamed"]).json["name"] as? String == "Renamed")
                #expect(try await api.delete("/v1/announcements/\(id)", key: key).status == .noContent)
            }
        }
    }

    @Test("An announcement under a topic skips contacts who left it and carries one-click List-Unsubscribe; a critical notice carries none", arguments: TestBackend.all)
    func topicAndHeaders(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await withAPI(backend) { api, tidings in
                let setup = try await MessagesAPITests.setUp(api, tidings, peer: peer)
                let key = setup.workspace.key
                try await Self.addAudience(api, tidings, workspace: setup.workspace)
                #expect(try await api.post("/v1/topics", key: key, json: ["slug": "product-news", "name": "Product news"]).status == .created)
                let left = try await api.request(.patch, "/v1/contacts/bob@example.com/subscriptions", key: key, json: ["topics": [["slug": "product-news", "subscribed": false]]])
                #expect(left.status == .ok, "\(left.body)")

                let id = try #require(try await api.post("/v1/announcements", key: key, json: ["name": "News", "templateSlug": "welcome", "topic": "product-news"]).json["id"] as? String)
                _ = try await api.post("/v1/announcements/\(id)/send", key: key, json: [:])
                _ = try await tidings.fanOuts.drain()
                let progress = try await api.get("/v1/announcements/\(id)", key: key)
                #expect(progress.json["audience"] as? [String: Int] == ["considered": 7, "notInSegment": 0, "unsubscribed": 2, "messages": 5], "\(progress.body)")
                #expect(try await tidings.deliveries.drain() == 4)
                let received = try await peer.waitForMessages(4)
                let recipients = Set(received.flatMap(\.recipients))
                #expect(recipients == ["ada@example.com", "cy@example.com", "fay@example.com", "gus@example.com"], "bob left the topic, dee everything")
                for message in received {
                    #expect(message.text.contains("List-Unsubscribe: <https://"), "\(message.text.prefix(600))")
                    #expect(message.text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"))
                }

                let critical = try #require(try await api.post("/v1/announcements", key: key, json: ["name": "Incident", "templateSlug": "welcome", "critical": true]).json["id"] as? String)
                _ = try await api.post("/v1/announcements/\(critical)/send", key: key, json: [:])
                _ = try await tidings.fanOuts.drain()
                #expect(try await tidings.deliveries.drain() == 6)
                let all = try await peer.waitForMessages(10)
                let notices = all.dropFirst(4)
                #expect(Set(notices.flatMap(\.recipients)).isSuperset(of: ["bob@example.com", "dee@example.com"]))
                #expect(notices.allSatisfy { !$0.text.contains("List-Unsubscribe") }, "a critical notice is not marketing mail")
            }
        }
    }

    @Test("An announcement's own tracking choice wins over the workspace's settings", arguments: TestBackend.all)
    func trackingChoice(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await withAPI(backend) { api, tidings in
                let setup = try await MessagesAPITests.setUp(api, tidings, peer: peer)
                let key = setup.workspace.key
                _ = try await api.post("/v1/contacts", key: key, json: ["email": "ada@example.com"])
                let bad = try await api.post("/v1/announcements", key: key, json: ["name": "x", "templateSlug": "welcome", "tracking": ["opens": "yes"]])
                #expect(bad.status == .unprocessableContent && bad.errorField == "tracking.opens", "\(bad.body)")
                // The workspace tracks nothing; this announcement tracks clicks only.
                let created = try await api.post("/v1/announcements", key: key, json: ["name": "Clicks", "templateSlug": "welcome", "tracking": ["clicks": true]])
                #expect((created.json["tracking"] as? [String: Any])?["clicks"] as? Bool == true, "\(created.body)")
                let id = try #require(created.json["id"] as? String)
                _ = try await api.post("/v1/announcements/\(id)/send", key: key, json: [:])
                _ = try await tidings.fanOuts.drain()
                #expect(try await tidings.deliveries.drain() == 1)
                let text = try #require(try await peer.waitForMessages(1).first?.text).replacingOccurrences(of: "=\r\n", with: "").replacingOccurrences(of: "=3D", with: "=")
                #expect(text.contains("/t/c/"), "links are tracked")
                #expect(!text.contains("/t/o/"), "no open pixel")
                #expect(!text.contains("href=\"https://acme.test/o/"), "the HTML link goes through the redirect (the text part keeps it)")
            }
        }
    }

    @Test("Another workspace's key finds neither the segments nor the announcements of this one (404)", arguments: TestBackend.all)
    func otherWorkspace(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await withAPI(backend) { api, tidings in
                let setup = try await MessagesAPITests.setUp(api, tidings, peer: peer)
                let key = setup.workspace.key
                let other = try await tidings.makeWorkspace(name: "Other").key
                let segment = try #require(try await api.post("/v1/segments", key: key, json: [
                    "name": "Pro", "filter": ["match": "all", "conditions": [["attribute": "plan", "op": "exists"]]],
                ]).json["id"] as? String)
                let announcement = try #require(try await api.post("/v1/announcements", key: key, json: ["name": "News", "templateSlug": "welcome"]).json["id"] as? String)
                for path in ["/v1/segments/\(segment)", "/v1/segments/\(segment)/count", "/v1/announcements/\(announcement)"] {
                    #expect(try await api.get(path, key: other).status == .notFound, "\(path)")
                }
                #expect(try await api.post("/v1/announcements/\(announcement)/send", key: other, json: [:]).status == .notFound)
                #expect(try await api.delete("/v1/segments/\(segment)", key: other).status == .notFound)
                #expect(try await api.get("/v1/segments", key: other).data.isEmpty)
                #expect(try await api.get("/v1/announcements", key: other).data.isEmpty)
                let draft = try await api.get("/v1/announcements/\(announcement)", key: key)
                #expect(draft.json["status"] as? String == "draft", "untouched by the other workspace")
            }
        }
    }

    // MARK: Pause, resume, cancel, schedule

    @Test("Pause holds the fan-out and waiting deliveries, resume continues, cancel cancels what still waits", arguments: TestBackend.all)
    func pauseResumeCancel(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await withAPI(backend) { api, tidings in
                let setup = try await MessagesAPITests.setUp(api, tidings, peer: peer)
                let key = setup.workspace.key
                try await Self.addAudience(api, tidings, workspace: setup.workspace)
                let id = try #require(try await api.post("/v1/announcements", key: key, json: ["name": "All", "templateSlug": "welcome"]).json["id"] as? String)
                _ = try await api.post("/v1/announcements/\(id)/send", key: key, json: [:])

                // Paused before the fan-out ran: nothing is queued.
                let paused = try await api.post("/v1/announcements/\(id)/pause", key: key, json: [:])
                #expect(paused.json["status"] as? String == "paused", "\(paused.body)")
                _ = try await tidings.fanOuts.drain()
                #expect((try await api.get("/v1/announcements/\(id)", key: key).json["audience"] as? [String: Int])?["considered"] == 0)

                let resumed = try await api.post("/v1/announcements/\(id)/resume", key: key, json: [:])
                #expect(resumed.json["status"] as? String == "sending", "\(resumed.body)")
                _ = try await tidings.fanOuts.drain()
                #expect((try await api.get("/v1/announcements/\(id)", key: key).json["messages"] as? [String: Int])?["queued"] == 5)

                // Paused after queueing: the deliveries wait.
                _ = try await api.post("/v1/announcements/\(id)/pause", key: key, json: [:])
                #expect(try await tidings.deliveries.drain() == 0)
                #expect(peer.received().isEmpty)
                _ = try await api.post("/v1/announcements/\(id)/resume", key: key, json: [:])
                #expect(try await tidings.deliveries.drain() == 5)
                #expect(try await peer.waitForMessages(5).count == 5)

                // Cancelled after queueing: what waits is cancelled, with the reason in its timeline.
                let second = try #require(try await api.post("/v1/announcements", key: key, json: ["name": "Second", "templateSlug": "welcome"]).json["id"] as? String)
                _ = try await api.post("/v1/announcements/\(second)/send", key: key, json: [:])
                _ = try await tidings.fanOuts.drain()
                let cancelled = try await api.post("/v1/announcements/\(second)/cancel", key: key, json: [:])
                #expect(cancelled.json["status"] as? String == "cancelled")
                #expect((cancelled.json["messages"] as? [String: Int])?["cancelled"] == 5, "\(cancelled.body)")
                #expect(try await tidings.deliveries.drain() == 0)
                let listed = try await api.get("/v1/messages?status=cancelled", key: key)
                let one = try #require(listed.data.first?["id"] as? String)
                let timeline = try await api.get("/v1/messages/\(one)", key: key).json["timeline"] as? [[String: Any]] ?? []
                #expect(timeline.map { $0["status"] as? String } == ["queued", "cancelled"])
                #expect(try await api.post("/v1/announcements/\(second)/resume", key: key, json: [:]).status == .conflict)
                #expect(peer.received().count == 5)
            }
        }
    }

    @Test("A scheduled announcement waits for its time, then goes out", arguments: TestBackend.all)
    func scheduled(backend: TestBackend) async throws {
        let clock = TestClock()
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await withAPI(backend, clock: clock) { api, tidings in
                let setup = try await MessagesAPITests.setUp(api, tidings, peer: peer)
                let key = setup.workspace.key
                try await Self.addAudience(api, tidings, workspace: setup.workspace)
                let at = Timestamp.format(clock.now.addingTimeInterval(3 * 86400))
                let id = try #require(try await api.post("/v1/announcements", key: key, json: ["name": "Later", "templateSlug": "welcome", "sendAt": at]).json["id"] as? String)
                let sent = try await api.post("/v1/announcements/\(id)/send", key: key, json: [:])
                #expect(sent.json["status"] as? String == "scheduled", "\(sent.body)")
                _ = try await tidings.fanOuts.drain()
                #expect(try await api.get("/v1/announcements/\(id)", key: key).json["status"] as? String == "scheduled")
                clock.advance(by: 3 * 86400 + 1)
                _ = try await tidings.fanOuts.drain()
                let done = try await api.get("/v1/announcements/\(id)", key: key)
                #expect(done.json["status"] as? String == "sent", "\(done.body)")
                #expect((done.json["messages"] as? [String: Int])?["queued"] == 5)
            }
        }
    }

    @Test("A worker told to stop hands its fan-out back at once, so another continues without waiting for the lease", arguments: TestBackend.all)
    func stopHandsBack(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await withAPI(backend) { api, tidings in
                let setup = try await MessagesAPITests.setUp(api, tidings, peer: peer)
                let key = setup.workspace.key
                for index in 0..<40 { _ = try await api.post("/v1/contacts", key: key, json: ["email": "p\(index)@example.com"]) }
                let id = try #require(try await api.post("/v1/announcements", key: key, json: ["name": "All", "templateSlug": "welcome"]).json["id"] as? String)
                _ = try await api.post("/v1/announcements/\(id)/send", key: key, json: [:])
                let settings = AnnouncementWorker.Settings(batchSize: 1, lease: 3600)
                let first = AnnouncementWorker(tidings.environment, messages: tidings.messages, signal: JobSignal(), deliveries: JobSignal(), settings: settings)
                let second = AnnouncementWorker(tidings.environment, messages: tidings.messages, signal: JobSignal(), deliveries: JobSignal(), settings: settings)
                // Stopped while it works (or before it started): either way it holds nothing afterwards.
                async let stopped = first.drain()
                try await Task.sleep(for: .milliseconds(20))
                first.stop()
                _ = try await stopped
                _ = try await second.drain()
                let progress = try await api.get("/v1/announcements/\(id)", key: key)
                #expect(progress.json["status"] as? String == "sent", "\(progress.body)")
                #expect((progress.json["audience"] as? [String: Int])?["messages"] == 40)
            }
        }
    }

    @Test("Contacts of another workspace created in between are neither counted nor judged by their attributes or events", arguments: TestBackend.all)
    func interleavedWorkspaces(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await withAPI(backend) { api, tidings in
                let setup = try await MessagesAPITests.setUp(api, tidings, peer: peer)
                let key = setup.workspace.key
                let other = try await tidings.makeWorkspace(name: "Other")
                // Ids of both workspaces' contacts interleave: each of ours lies between two of theirs.
                for index in 0..<9 {
                    _ = try await api.post("/v1/contacts", key: other.key, json: ["email": "them\(index)@example.com", "plan": "pro"])
                    _ = try await api.post("/v1/events", key: other.key, json: ["email": "them\(index)@example.com", "slug": "upgraded"])
                    _ = try await api.post("/v1/contacts", key: key, json: ["email": "us\(index)@example.com", "plan": index % 3 == 0 ? "pro" : "free"])
                    if index % 3 == 1 { _ = try await api.post("/v1/events", key: key, json: ["email": "us\(index)@example.com", "slug": "upgraded"]) }
                }
                let segment = try #require(try await api.post("/v1/segments", key: key, json: [
                    "name": "Pro or upgraded", "filter": ["match": "any", "conditions": [
                        ["attribute": "plan", "op": "eq", "value": "pro"], ["event": "upgraded", "op": "did"],
                    ]],
                ]).json["id"] as? String)
                let count = try await api.get("/v1/segments/\(segment)/count", key: key)
                #expect(count.json["contacts"] as? Int == 9 && count.json["matching"] as? Int == 6, "\(count.body)")
                let id = try #require(try await api.post("/v1/announcements", key: key, json: ["name": "Ours", "templateSlug": "welcome", "segmentId": segment]).json["id"] as? String)
                _ = try await api.post("/v1/announcements/\(id)/send", key: key, json: [:])
                // Batches of two: every batch's id range takes in contacts of the other workspace.
                let worker = AnnouncementWorker(
                    tidings.environment, messages: tidings.messages, signal: JobSignal(), deliveries: JobSignal(), settings: .init(batchSize: 2)
                )
                _ = try await worker.drain()
                let detail = try await api.get("/v1/announcements/\(id)", key: key)
                #expect(detail.json["audience"] as? [String: Int] == ["considered": 9, "messages": 6, "notInSegment": 3, "unsubscribed": 0], "\(detail.body)")
                _ = try await tidings.deliveries.drain()
                let inbox = Set(try await peer.waitForMessages(6).flatMap(\.recipients))
                #expect(inbox == Set([0, 3, 6, 1, 4, 7].map { "us\($0)@example.com" }))
            }
        }
    }

    // MARK: Sharing the delivery queue

    static func jobCounts(_ tidings: Tidings) async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try await tidings.database.read({ db in try await db.raw("SELECT kind, COUNT(*) AS n FROM jobs GROUP BY kind").all() }) {
            counts[try row.decode(column: "kind", as: String.self)] = try row.decode(column: "n", as: Int.self)
        }
        return counts
    }

    /// `count` pro contacts `<prefix><n>@example.com` and an announcement to all of them, sent
    /// and fanned out (its messages queued); returns the announcement's id.
    static func queuedAnnouncement(to count: Int, prefix: String, _ api: TestClient, _ tidings: Tidings, key: String) async throws -> String {
        for index in 0..<count { _ = try await api.post("/v1/contacts", key: key, json: ["email": "\(prefix)\(index)@example.com", "plan": "pro"]) }
        let id = try #require(try await api.post("/v1/announcements", key: key, json: ["name": "All", "templateSlug": "welcome"]).json["id"] as? String)
        _ = try await api.post("/v1/announcements/\(id)/send", key: key, json: [:])
        _ = try await tidings.fanOuts.drain()
        return id
    }

    /// A delivery worker of its own with `concurrency` slots.
    static func deliveryWorker(_ tidings: Tidings, concurrency: Int) -> DeliveryWorker {
        var settings = tidings.configuration.delivery
        settings.concurrency = concurrency
        return DeliveryWorker(tidings.environment, settings: settings, signal: JobSignal())
    }

    @Test("Mail sent while an announcement waits goes out first; the announcement's messages get delivery jobs only as slots free up", arguments: TestBackend.all)
    func sharesTheQueue(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await withAPI(backend) { api, tidings in
                let setup = try await MessagesAPITests.setUp(api, tidings, peer: peer)
                let key = setup.workspace.key
                let id = try await Self.queuedAnnouncement(to: 12, prefix: "reader", api, tidings, key: key)
                #expect((try await api.get("/v1/announcements/\(id)", key: key).json["messages"] as? [String: Int])?["queued"] == 12)
                // Twelve queued messages, one job that hands them out.
                #expect(try await Self.jobCounts(tidings) == [AnnouncementRepository.handOutKind: 1])

                // One of them cancelled while it waits (it has no job to remove).
                let waiting = try await api.get("/v1/messages?status=queued", key: key)
                let cancelledId = try #require(waiting.data.first?["id"] as? String)
                let cancelled = try await api.delete("/v1/messages/\(cancelledId)", key: key)
                #expect(cancelled.json["status"] as? String == "cancelled", "\(cancelled.body)")

                // A password reset sent now, behind the announcement.
                let urgent = try await api.post("/v1/messages", key: key, json: ["rcpt": "urgent@example.com", "templateSlug": "welcome"])
                #expect(urgent.status == .accepted, "\(urgent.body)")
                let worker = Self.deliveryWorker(tidings, concurrency: 3)
                #expect(try await worker.drain() == 12, "11 announcement messages and the reset")
                await worker.shutdownPools()
                let received = try await peer.waitForMessages(12)
                #expect(received.prefix(3).contains { $0.recipients == ["urgent@example.com"] }, "the reset was in the first claim")
                #expect(!received.contains { message in message.text.contains(cancelledId) }, "the cancelled message was not sent")
                #expect(try await Self.jobCounts(tidings).isEmpty, "every job is done, the hand-out's too")
                let detail = try await api.get("/v1/announcements/\(id)", key: key)
                #expect((detail.json["messages"] as? [String: Int])?["sent"] == 11, "\(detail.body)")

                // The fan-out stores no `queued` step; the timeline shows it from the message row.
                let delivered = try #require(try await api.get("/v1/messages?status=delivered", key: key).data.first { ($0["id"] as? String) != urgent.json["id"] as? String })
                let deliveredId = try #require(delivered["id"] as? String)
                let shown = try await api.get("/v1/messages/\(deliveredId)", key: key)
                let timeline = try #require(shown.json["timeline"] as? [[String: Any]])
                #expect(timeline.map { $0["status"] as? String } == ["queued", "sending", "delivered"], "\(shown.body)")
                #expect(timeline.first?["at"] as? String == shown.json["createdAt"] as? String, "\(shown.body)")
                let stored = try await tidings.database.read { db in
                    try await db.raw("SELECT kind FROM message_events WHERE message_id = \(bind: deliveredId) ORDER BY position").all()
                        .map { try $0.decode(column: "kind", as: String.self) }
                }
                #expect(stored == ["sending", "delivered"])
            }
        }
    }

    @Test("Pausing and resuming while delivery workers hand out messages answers every time, loses nothing and sends nothing twice", arguments: TestBackend.all)
    func pauseWhileHandingOut(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await withAPI(backend) { api, tidings in
                let setup = try await MessagesAPITests.setUp(api, tidings, peer: peer)
                let key = setup.workspace.key
                let id = try await Self.queuedAnnouncement(to: 30, prefix: "r", api, tidings, key: key)
                let worker = Self.deliveryWorker(tidings, concurrency: 2)
                async let delivering: Void = {
                    for _ in 0..<40 {
                        _ = try await worker.drain()
                        try await Task.sleep(for: .milliseconds(3))
                    }
                }()
                for _ in 0..<12 {
                    let paused = try await api.post("/v1/announcements/\(id)/pause", key: key, json: [:])
                    #expect(paused.status == .ok, "\(paused.body)")
                    let resumed = try await api.post("/v1/announcements/\(id)/resume", key: key, json: [:])
                    #expect(resumed.status == .ok, "\(resumed.body)")
                }
                try await delivering
                _ = try await worker.drain()
                await worker.shutdownPools()
                let received = try await peer.waitForMessages(30)
                #expect(received.count == 30 && peer.received().count == 30)
                #expect(Set(received.flatMap(\.recipients)) == Set((0..<30).map { "r\($0)@example.com" }))
                let left = try await Self.jobCounts(tidings)
                #expect(left.isEmpty, "\(left)")
            }
        }
    }

    // MARK: Crash and takeover

    @Test("A fan-out stopped between batches is taken over after its lease runs out; nobody gets a second copy", arguments: TestBackend.all)
    func takeover(backend: TestBackend) async throws {
        let clock = TestClock()
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await withAPI(backend, clock: clock) { api, tidings in
                let setup = try await MessagesAPITests.setUp(api, tidings, peer: peer)
                let key = setup.workspace.key
                let emails = (0..<23).map { "person\($0)@example.com" }
                for email in emails { _ = try await api.post("/v1/contacts", key: key, json: ["email": email]) }
                let id = try #require(try await api.post("/v1/announcements", key: key, json: ["name": "All", "templateSlug": "welcome"]).json["id"] as? String)
                _ = try await api.post("/v1/announcements/\(id)/send", key: key, json: [:])

                let settings = AnnouncementWorker.Settings(batchSize: 5, lease: 60)
                let first = AnnouncementWorker(tidings.environment, messages: tidings.messages, signal: JobSignal(), deliveries: JobSignal(), settings: settings)
                let second = AnnouncementWorker(tidings.environment, messages: tidings.messages, signal: JobSignal(), deliveries: JobSignal(), settings: settings)
                _ = try await first.drain(maxBatches: 2)
                var progress = try await api.get("/v1/announcements/\(id)", key: key)
                #expect((progress.json["audience"] as? [String: Int])?["considered"] == 10, "\(progress.body)")
                #expect(try await second.drain() == 0, "the first worker's lease still holds")
                clock.advance(by: 61)
                #expect(try await second.drain() == 1)
                progress = try await api.get("/v1/announcements/\(id)", key: key)
                #expect(progress.json["status"] as? String == "sent")
                #expect((progress.json["audience"] as? [String: Int])?["considered"] == 23)

                let rows = try await tidings.adminDatabase.read { db in
                    try await db.raw("SELECT contact_id FROM messages WHERE origin_id = \(bind: id)").all().map { try $0.decode(column: "contact_id", as: String.self) }
                }
                #expect(rows.count == 23 && Set(rows).count == 23)
                #expect(try await tidings.deliveries.drain() == 23)
                let received = try await peer.waitForMessages(23)
                #expect(received.flatMap(\.recipients).sorted() == emails.sorted())

                // Even a batch written twice could not give anyone a second message.
                let duplicate = try await TenantScope.with(.workspace(setup.workspace.id)) {
                    try await tidings.database.transaction { db in
                        let existing = try await MessageRepository(db, vault: try await tidings.keyring.vault(for: setup.workspace.id)).find(id: try #require(
                            try await db.raw("SELECT id FROM messages WHERE origin_id = \(bind: id) LIMIT 1").first()?.decode(column: "id", as: String.self)
                        ))
                        var copy = try #require(existing)
                        copy.id = "msg_duplicate"
                        do {
                            try await MessageRepository(db, vault: try await tidings.keyring.vault(for: setup.workspace.id)).insert([copy])
                            return false
                        } catch {
                            return true
                        }
                    }
                }
                #expect(duplicate, "the database refuses a second message for the same contact and announcement")
            }
        }
    }
}
