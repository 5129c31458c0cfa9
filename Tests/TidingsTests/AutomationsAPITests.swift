import Foundation
import HTTPTypes
import SQLKit
import Testing
import TidingsApp
@testable import TidingsDomain
@testable import TidingsServices
@testable import TidingsStorage

/// `/v1/automations` end to end: events and contact changes enrol contacts, the queue runs
/// their steps as the test clock moves, and real mail reaches a real SMTP server (aiosmtpd).
@Suite("Automations API")
struct AutomationsAPITests {
    /// A workspace with the templates `welcome`, `tips` and `final` (subjects "Welcome",
    /// "Tips", "Final") and an email server pointing at `peer`.
    static func setUp(_ api: TestClient, _ tidings: Tidings, peer: SMTPPeer?) async throws -> TestWorkspace {
        let workspace = try await tidings.makeWorkspace()
        for slug in ["welcome", "tips", "final"] {
            let template = try await api.post("/v1/templates", key: workspace.key, json: [
                "slug": slug, "subject": slug.capitalized, "from": "Acme <hello@acme.test>", "html": "<p>\(slug) for {{ contact.email }}</p>",
            ])
            #expect(template.status == .created, "\(template.body)")
        }
        let server = try await api.post("/v1/email-servers", key: workspace.key, json: [
            "name": "peer", "host": "127.0.0.1", "port": peer?.port ?? 2525, "security": "none",
        ])
        #expect(server.status == .created, "\(server.body)")
        return workspace
    }

    /// Runs the automation and delivery workers until neither has anything due now.
    static func settle(_ tidings: Tidings) async throws {
        for _ in 0..<50 {
            let steps = try await tidings.automationWorker.drain()
            let deliveries = try await tidings.deliveries.drain()
            if steps == 0, deliveries == 0 { return }
        }
        Issue.record("the workers never settled")
    }

    static func create(_ api: TestClient, _ workspace: TestWorkspace, _ body: [String: Any]) async throws -> String {
        let reply = try await api.post("/v1/automations", key: workspace.key, json: body)
        #expect(reply.status == .created, "\(reply.body)")
        return try #require(reply.json["id"] as? String)
    }

    static func event(_ api: TestClient, _ workspace: TestWorkspace, _ email: String, _ slug: String) async throws {
        let reply = try await api.post("/v1/events", key: workspace.key, json: ["email": email, "slug": slug])
        #expect(reply.status.code < 300, "\(reply.body)")
    }

    static func stats(_ api: TestClient, _ workspace: TestWorkspace, _ id: String) async throws -> [String: Any] {
        let reply = try await api.get("/v1/automations/\(id)", key: workspace.key)
        #expect(reply.status == .ok, "\(reply.body)")
        return reply.json["stats"] as? [String: Any] ?? [:]
    }

    static func enrolments(_ api: TestClient, _ workspace: TestWorkspace, _ id: String) async throws -> [[String: Any]] {
        let reply = try await api.get("/v1/automations/\(id)/enrolments?limit=500", key: workspace.key)
        #expect(reply.status == .ok, "\(reply.body)")
        return reply.data
    }

    /// The subjects each recipient got, in order of arrival.
    static func inbox(_ peer: SMTPPeer) -> [String: [String]] {
        var inbox: [String: [String]] = [:]
        for message in peer.received() {
            let subject = message.text.components(separatedBy: "\r\n").first { $0.hasPrefix("Subject: ") }.map { String($0.dropFirst(9)) } ?? "?"
            for recipient in message.recipients { inbox[recipient, default: []].append(subject) }
        }
        return inbox
    }

    static let minute: TimeInterval = 60
    static let hour: TimeInterval = 3600
    static let day: TimeInterval = 86400

    // MARK: Simple form

    @Test("A simple automation sends its template once the delay has passed; `once` enrols a contact once, `every` each time", arguments: TestBackend.all)
    func simpleAutomationSendsAfterItsDelay(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            let clock = TestClock()
            try await withAPI(backend, clock: clock) { api, tidings in
                let workspace = try await Self.setUp(api, tidings, peer: peer)
                let id = try await Self.create(api, workspace, [
                    "name": "Welcome", "templateSlug": "welcome", "triggerEvent": "signup",
                    "delay": ["amount": 10, "unit": "minutes"], "frequency": "once", "status": "enabled",
                ])
                let created = try await api.get("/v1/automations/\(id)", key: workspace.key)
                #expect(created.json["templateSlug"] as? String == "welcome")
                #expect((created.json["steps"] as? [[String: Any]])?.map { $0["type"] as? String } == ["wait", "send"])

                try await Self.event(api, workspace, "ann@example.com", "signup")
                try await Self.settle(tidings)
                #expect(peer.received().isEmpty, "nothing before the delay")
                let waiting = try #require(try await Self.enrolments(api, workspace, id).first)
                #expect(waiting["state"] as? String == "active" && waiting["email"] as? String == "ann@example.com")
                #expect(waiting["wakeAt"] as? String == Timestamp.format(clock.now.addingTimeInterval(10 * Self.minute)))

                clock.advance(by: 9 * Self.minute)
                try await Self.settle(tidings)
                #expect(peer.received().isEmpty, "nor a minute before it ends")
                clock.advance(by: 2 * Self.minute)
                try await Self.settle(tidings)
                #expect(Self.inbox(peer) == ["ann@example.com": ["Welcome"]])
                let stats = try await Self.stats(api, workspace, id)
                #expect(stats["enrolled"] as? Int == 1 && stats["completed"] as? Int == 1 && stats["sent"] as? Int == 1 && stats["inProgress"] as? Int == 0)
                let done = try #require(try await Self.enrolments(api, workspace, id).first)
                let steps = try #require(done["steps"] as? [[String: Any]])
                #expect(steps.map { $0["outcome"] as? String } == ["waited", "sent"])
                let messageId = try #require(steps[1]["messageId"] as? String)
                let message = try await api.get("/v1/messages/\(messageId)", key: workspace.key)
                #expect(message.json["status"] as? String == "delivered" && message.json["rcpt"] as? String == "ann@example.com")

                // `once`: the same contact's next signup does nothing.
                try await Self.event(api, workspace, "ann@example.com", "signup")
                clock.advance(by: Self.hour)
                try await Self.settle(tidings)
                #expect(try await Self.stats(api, workspace, id)["enrolled"] as? Int == 1)
                #expect(peer.received().count == 1)

                // `every`: each signup enrols again, each with its own send.
                let patched = try await api.request(.patch, "/v1/automations/\(id)", key: workspace.key, json: ["frequency": "every"])
                #expect(patched.status == .ok, "\(patched.body)")
                try await Self.event(api, workspace, "ann@example.com", "signup")
                try await Self.event(api, workspace, "ann@example.com", "signup")
                try await Self.settle(tidings)
                clock.advance(by: 11 * Self.minute)
                try await Self.settle(tidings)
                #expect(Self.inbox(peer) == ["ann@example.com": ["Welcome", "Welcome", "Welcome"]])
                #expect(try await Self.stats(api, workspace, id)["enrolled"] as? Int == 3)
            }
        }
    }

    @Test("contact.created enrols a contact however it was created; contact.updated each time its attributes are set", arguments: TestBackend.all)
    func builtInContactEvents(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await withAPI(backend, clock: TestClock()) { api, tidings in
                let workspace = try await Self.setUp(api, tidings, peer: peer)
                let created = try await Self.create(api, workspace, [
                    "name": "New contact", "templateSlug": "welcome", "triggerEvent": "contact.created", "status": "enabled",
                ])
                let updated = try await Self.create(api, workspace, [
                    "name": "Changed", "templateSlug": "tips", "triggerEvent": "contact.updated", "frequency": "every", "status": "enabled",
                ])
                _ = try await api.post("/v1/contacts", key: workspace.key, json: ["email": "api@example.com", "plan": "free"])
                try await Self.event(api, workspace, "event@example.com", "visited")
                let sent = try await api.post("/v1/messages", key: workspace.key, json: ["rcpt": "message@example.com", "templateSlug": "final"])
                #expect(sent.status == .accepted)
                let imported = try await api.request(.post, "/v1/contacts/import", key: workspace.key, body: "email,plan\nimport@example.com,pro\n", contentType: "text/csv")
                #expect(imported.status == .ok, "\(imported.body)")
                try await Self.settle(tidings)
                let inbox = Self.inbox(peer)
                for email in ["api@example.com", "event@example.com", "message@example.com", "import@example.com"] {
                    #expect(inbox[email]?.filter { $0 == "Welcome" }.count == 1, "\(email): \(inbox[email] ?? [])")
                }
                #expect(inbox["message@example.com"]?.contains("Final") == true)
                #expect(try await Self.stats(api, workspace, created)["enrolled"] as? Int == 4)
                #expect(try await Self.stats(api, workspace, updated)["enrolled"] as? Int == 0, "creating is not updating")

                _ = try await api.post("/v1/contacts", key: workspace.key, json: ["email": "api@example.com", "plan": "pro"])
                _ = try await api.post("/v1/contacts", key: workspace.key, json: ["email": "api@example.com", "seats": 3])
                try await Self.settle(tidings)
                #expect(Self.inbox(peer)["api@example.com"] == ["Welcome", "Tips", "Tips"])
                #expect(try await Self.stats(api, workspace, created)["enrolled"] as? Int == 4, "an update creates nothing")

                // The built-in slugs cannot be recorded as events.
                let reserved = try await api.post("/v1/events", key: workspace.key, json: ["email": "x@example.com", "slug": "contact.created"])
                #expect(reserved.status == .unprocessableContent && reserved.errorCode == "reserved_slug" && reserved.errorField == "slug")
            }
        }
    }

    // MARK: Sequences

    @Test("waitFor continues when the event comes, and on timeout continues or exits as written", arguments: TestBackend.all)
    func waitForEventOrTimeout(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            let clock = TestClock()
            try await withAPI(backend, clock: clock) { api, tidings in
                let workspace = try await Self.setUp(api, tidings, peer: peer)
                let continuing = try await Self.create(api, workspace, [
                    "name": "Activation", "triggerEvent": "signup", "status": "enabled", "steps": [
                        ["type": "send", "templateSlug": "welcome"],
                        ["type": "waitFor", "event": "activated", "timeout": ["amount": 2, "unit": "days"], "onTimeout": "continue"],
                        ["type": "send", "templateSlug": "tips"],
                    ],
                ])
                let exiting = try await Self.create(api, workspace, [
                    "name": "Trial", "triggerEvent": "trial", "status": "enabled", "steps": [
                        ["type": "waitFor", "event": "activated", "timeout": ["amount": 1, "unit": "days"], "onTimeout": "exit"],
                        ["type": "send", "templateSlug": "final"],
                    ],
                ])
                // An `activated` before the wait began does not count.
                try await Self.event(api, workspace, "ann@example.com", "activated")
                for email in ["ann@example.com", "bob@example.com"] { try await Self.event(api, workspace, email, "signup") }
                try await Self.event(api, workspace, "cid@example.com", "trial")
                try await Self.settle(tidings)
                #expect(Self.inbox(peer) == ["ann@example.com": ["Welcome"], "bob@example.com": ["Welcome"]])
                let waiting = try await Self.enrolments(api, workspace, continuing)
                #expect(waiting.map { $0["state"] as? String } == ["waiting", "waiting"])
                #expect(waiting.map { $0["waitingFor"] as? String } == ["activated", "activated"])

                clock.advance(by: Self.hour)
                try await Self.event(api, workspace, "ann@example.com", "activated")
                try await Self.settle(tidings)
                #expect(Self.inbox(peer)["ann@example.com"] == ["Welcome", "Tips"], "the event moves ann on at once")
                #expect(Self.inbox(peer)["bob@example.com"] == ["Welcome"])

                clock.advance(by: Self.day)
                try await Self.settle(tidings)
                #expect(Self.inbox(peer)["cid@example.com"] == nil, "the trial wait timed out and exits")
                let trial = try #require(try await Self.enrolments(api, workspace, exiting).first)
                #expect(trial["state"] as? String == "exited" && trial["reason"] as? String == "wait_timed_out")
                #expect(Self.inbox(peer)["bob@example.com"] == ["Welcome"], "bob's wait has a day to go")

                clock.advance(by: Self.day)
                try await Self.settle(tidings)
                #expect(Self.inbox(peer)["bob@example.com"] == ["Welcome", "Tips"], "after the timeout bob continues")
                let done = try await Self.enrolments(api, workspace, continuing)
                #expect(done.map { $0["state"] as? String } == ["completed", "completed"])
                var outcomes: [String: [String]] = [:]
                for enrolment in done {
                    outcomes[enrolment["email"] as? String ?? "?"] = (enrolment["steps"] as? [[String: Any]] ?? []).map { $0["outcome"] as? String ?? "?" }
                }
                #expect(outcomes == ["ann@example.com": ["sent", "event", "sent"], "bob@example.com": ["sent", "timed_out", "sent"]])
                #expect(try await Self.stats(api, workspace, exiting)["reasons"] as? [String: Int] == ["wait_timed_out": 1])
            }
        }
    }

    @Test("Conditions judge attributes and past events; else exits or jumps ahead", arguments: TestBackend.all)
    func conditionsBranch(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            let clock = TestClock()
            try await withAPI(backend, clock: clock) { api, tidings in
                let workspace = try await Self.setUp(api, tidings, peer: peer)
                let id = try await Self.create(api, workspace, [
                    "name": "Upsell", "triggerEvent": "go", "frequency": "every", "status": "enabled", "steps": [
                        ["type": "condition", "filter": ["match": "all", "conditions": [["attribute": "plan", "op": "eq", "value": "pro"]]], "else": ["goTo": 2]],
                        ["type": "send", "templateSlug": "tips"],
                        ["type": "condition", "filter": ["match": "all", "conditions": [["event": "purchased", "op": "did", "withinDays": 7, "atLeast": 2]]]],
                        ["type": "send", "templateSlug": "final"],
                    ],
                ])
                for (email, plan) in [("pro-buyer@example.com", "pro"), ("free-buyer@example.com", "free"), ("pro-idle@example.com", "pro")] {
                    _ = try await api.post("/v1/contacts", key: workspace.key, json: ["email": email, "plan": plan])
                }
                // Two purchases each for the buyers; one of pro-idle's lies outside the 7-day window.
                try await Self.event(api, workspace, "pro-idle@example.com", "purchased")
                clock.advance(by: 8 * Self.day)
                for email in ["pro-buyer@example.com", "free-buyer@example.com", "pro-buyer@example.com", "free-buyer@example.com", "pro-idle@example.com"] {
                    try await Self.event(api, workspace, email, "purchased")
                }
                for email in ["pro-buyer@example.com", "free-buyer@example.com", "pro-idle@example.com"] { try await Self.event(api, workspace, email, "go") }
                try await Self.settle(tidings)
                let inbox = Self.inbox(peer)
                #expect(inbox["pro-buyer@example.com"]?.sorted() == ["Final", "Tips"])
                #expect(inbox["free-buyer@example.com"] == ["Final"], "the plan condition jumped over the tips")
                #expect(inbox["pro-idle@example.com"] == ["Tips"], "one purchase in the window is not two: exit")
                let byEmail = Dictionary(try await Self.enrolments(api, workspace, id).map { ($0["email"] as? String ?? "", $0) }, uniquingKeysWith: { a, _ in a })
                #expect(byEmail["pro-idle@example.com"]?["state"] as? String == "exited")
                #expect(byEmail["pro-idle@example.com"]?["reason"] as? String == "condition_not_met")
                #expect((byEmail["free-buyer@example.com"]?["steps"] as? [[String: Any]])?.map { $0["outcome"] as? String } == ["condition_not_met", "condition_met", "sent"])
                let stats = try await Self.stats(api, workspace, id)
                #expect(stats["completed"] as? Int == 2 && stats["exited"] as? Int == 1 && stats["sent"] as? Int == 4)
            }
        }
    }

    @Test("An exit event ends an onboarding sequence midway; nothing after it is sent", arguments: TestBackend.all)
    func exitEventEndsTheSequence(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            let clock = TestClock()
            try await withAPI(backend, clock: clock) { api, tidings in
                let workspace = try await Self.setUp(api, tidings, peer: peer)
                let id = try await Self.create(api, workspace, [
                    "name": "Onboarding", "triggerEvent": "signup", "exitEvent": "upgraded", "status": "enabled", "steps": [
                        ["type": "send", "templateSlug": "welcome"],
                        ["type": "wait", "duration": ["amount": 1, "unit": "days"]],
                        ["type": "send", "templateSlug": "tips"],
                        ["type": "wait", "duration": ["amount": 1, "unit": "days"]],
                        ["type": "send", "templateSlug": "final"],
                    ],
                ])
                for email in ["ann@example.com", "bob@example.com"] { try await Self.event(api, workspace, email, "signup") }
                try await Self.settle(tidings)
                clock.advance(by: Self.day)
                try await Self.settle(tidings)
                #expect(Self.inbox(peer) == ["ann@example.com": ["Welcome", "Tips"], "bob@example.com": ["Welcome", "Tips"]])

                try await Self.event(api, workspace, "ann@example.com", "upgraded")
                try await Self.settle(tidings)
                clock.advance(by: 2 * Self.day)
                try await Self.settle(tidings)
                #expect(Self.inbox(peer) == ["ann@example.com": ["Welcome", "Tips"], "bob@example.com": ["Welcome", "Tips", "Final"]])
                let stats = try await Self.stats(api, workspace, id)
                #expect(stats["exited"] as? Int == 1 && stats["completed"] as? Int == 1 && stats["sent"] as? Int == 5)
                #expect(stats["reasons"] as? [String: Int] == ["exit_event": 1])
                let queued = try await tidings.database.read { db in
                    try await db.raw("SELECT COUNT(*) AS n FROM jobs WHERE kind = 'automation.step'").first()!.decode(column: "n", as: Int.self)
                }
                #expect(queued == 0, "the ended enrolment's pending wait was removed from the queue")
            }
        }
    }

    // MARK: Exactly once

    @Test("The same trigger handled concurrently, and the same step run concurrently, enrol once and send once", arguments: TestBackend.all)
    func duplicatesChangeNothing(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await withAPI(backend, clock: TestClock()) { api, tidings in
                let workspace = try await Self.setUp(api, tidings, peer: peer)
                let id = try await Self.create(api, workspace, [
                    "name": "Receipt", "triggerEvent": "bought", "frequency": "every", "status": "enabled", "steps": [
                        ["type": "send", "templateSlug": "welcome"], ["type": "send", "templateSlug": "tips"],
                    ],
                ])
                try await Self.event(api, workspace, "ann@example.com", "bought")
                let engine = AutomationEngine(tidings.environment, messages: tidings.messages, deliverySignal: tidings.jobSignal)
                // As if the event's job were claimed by several instances at once (a lease that ran
                // out under a slow worker): the same subject, run side by side.
                func runConcurrently(kind: String) async throws {
                    let job = try await Self.queuedJob(tidings, kind: kind)
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for copy in 0..<4 {
                            group.addTask {
                                try await engine.run(Job(id: copy == 0 ? job.id : "job_copy\(copy)", workspaceId: job.workspaceId, kind: job.kind, subjectId: job.subjectId, attempts: 1))
                            }
                        }
                        try await group.waitForAll()
                    }
                }
                try await runConcurrently(kind: AutomationEngine.triggerKind)
                #expect(try await Self.enrolments(api, workspace, id).count == 1)
                try await runConcurrently(kind: AutomationEngine.stepKind)
                try await runConcurrently(kind: AutomationEngine.stepKind)
                // And once more, one after the other, as a retry after a crash would.
                let enrolment = try #require(try await Self.enrolments(api, workspace, id).first)
                let enrolmentId = try #require(enrolment["id"] as? String)
                for index in 0..<2 {
                    try await engine.run(Job(id: "job_retry\(index)", workspaceId: workspace.id, kind: AutomationEngine.stepKind, subjectId: "\(enrolmentId):\(index)", attempts: 2))
                }
                try await Self.settle(tidings)
                #expect(Self.inbox(peer).mapValues { $0.sorted() } == ["ann@example.com": ["Tips", "Welcome"]])
                let stats = try await Self.stats(api, workspace, id)
                #expect(stats["enrolled"] as? Int == 1 && stats["sent"] as? Int == 2 && stats["completed"] as? Int == 1)
                let messages = try await api.get("/v1/messages?contact=ann@example.com", key: workspace.key)
                #expect(messages.data.count == 2)
            }
        }
    }

    @Test("Two workers draining side by side, with each contact's trigger sent twice, enrol each contact once and send each step once", arguments: TestBackend.all)
    func concurrentWorkersEnrolOnce(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await withAPI(backend, clock: TestClock()) { api, tidings in
                let workspace = try await Self.setUp(api, tidings, peer: peer)
                let id = try await Self.create(api, workspace, [
                    "name": "Welcome", "triggerEvent": "signup", "frequency": "once", "status": "enabled", "steps": [
                        ["type": "send", "templateSlug": "welcome"], ["type": "send", "templateSlug": "tips"], ["type": "send", "templateSlug": "final"],
                    ],
                ])
                let emails = (0..<12).map { "user\($0)@example.com" }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for email in emails + emails {
                        group.addTask { try await Self.event(api, workspace, email, "signup") }
                    }
                    try await group.waitForAll()
                }
                let workers = (0..<2).map { _ in
                    AutomationWorker(
                        tidings.environment, engine: AutomationEngine(tidings.environment, messages: tidings.messages, deliverySignal: tidings.jobSignal),
                        settings: AutomationWorkerSettings(batchSize: 3), signal: JobSignal()
                    )
                }
                async let first = workers[0].drain()
                async let second = workers[1].drain()
                async let third = tidings.automationWorker.drain()
                _ = try await (first, second, third)
                try await Self.settle(tidings)
                let inbox = Self.inbox(peer)
                // Steps queued together are delivered side by side: their order of arrival may vary.
                for email in emails { #expect(inbox[email]?.sorted() == ["Final", "Tips", "Welcome"], "\(email): \(inbox[email] ?? [])") }
                let stats = try await Self.stats(api, workspace, id)
                #expect(stats["enrolled"] as? Int == 12 && stats["sent"] as? Int == 36 && stats["completed"] as? Int == 12)
            }
        }
    }

    /// The one queued job of `kind`.
    static func queuedJob(_ tidings: Tidings, kind: String) async throws -> Job {
        let rows = try await tidings.database.read { db in
            try await db.raw("SELECT id, workspace_id, kind, subject_id, attempts FROM jobs WHERE kind = \(bind: kind)").all().map { row in
                Job(
                    id: try row.decode(column: "id", as: String.self), workspaceId: try row.decode(column: "workspace_id", as: String.self),
                    kind: kind, subjectId: try row.decode(column: "subject_id", as: String.self), attempts: try row.decode(column: "attempts", as: Int.self)
                )
            }
        }
        #expect(rows.count == 1)
        return try #require(rows.first)
    }

    // MARK: Pausing, disabling, cancelling

    @Test("Pausing holds due steps and enrols nobody; enabling again sends what was held", arguments: TestBackend.all)
    func pauseHoldsAndResumeSends(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            let clock = TestClock()
            try await withAPI(backend, clock: clock) { api, tidings in
                let workspace = try await Self.setUp(api, tidings, peer: peer)
                let id = try await Self.create(api, workspace, [
                    "name": "Reminder", "templateSlug": "tips", "triggerEvent": "signup", "delay": ["amount": 1, "unit": "hours"], "status": "enabled",
                ])
                try await Self.event(api, workspace, "ann@example.com", "signup")
                try await Self.settle(tidings)
                let paused = try await api.request(.patch, "/v1/automations/\(id)", key: workspace.key, json: ["status": "paused"])
                #expect(paused.status == .ok && paused.json["status"] as? String == "paused", "\(paused.body)")
                try await Self.event(api, workspace, "bob@example.com", "signup")
                clock.advance(by: 3 * Self.hour)
                try await Self.settle(tidings)
                #expect(peer.received().isEmpty, "held while paused")
                let held = try await Self.enrolments(api, workspace, id)
                #expect(held.map { $0["email"] as? String } == ["ann@example.com"], "nobody enrolled while paused")
                #expect(held.first?["state"] as? String == "active")

                let resumed = try await api.request(.patch, "/v1/automations/\(id)", key: workspace.key, json: ["status": "enabled"])
                #expect(resumed.status == .ok)
                try await Self.settle(tidings)
                #expect(Self.inbox(peer) == ["ann@example.com": ["Tips"]])
                #expect(try await Self.stats(api, workspace, id)["completed"] as? Int == 1)
            }
        }
    }

    @Test("Disabling cancels the enrolments in progress with the reason; nothing more is sent", arguments: TestBackend.all)
    func disablingCancels(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            let clock = TestClock()
            try await withAPI(backend, clock: clock) { api, tidings in
                let workspace = try await Self.setUp(api, tidings, peer: peer)
                let id = try await Self.create(api, workspace, [
                    "name": "Drip", "triggerEvent": "signup", "status": "enabled", "steps": [
                        ["type": "send", "templateSlug": "welcome"],
                        ["type": "waitFor", "event": "activated", "timeout": ["amount": 3, "unit": "days"]],
                        ["type": "send", "templateSlug": "tips"],
                    ],
                ])
                for email in ["ann@example.com", "bob@example.com"] { try await Self.event(api, workspace, email, "signup") }
                try await Self.settle(tidings)
                let disabled = try await api.request(.patch, "/v1/automations/\(id)", key: workspace.key, json: ["status": "disabled"])
                #expect(disabled.status == .ok, "\(disabled.body)")
                let stats = try #require(disabled.json["stats"] as? [String: Any])
                #expect(stats["cancelled"] as? Int == 2 && stats["inProgress"] as? Int == 0 && stats["sent"] as? Int == 2)
                #expect(stats["reasons"] as? [String: Int] == ["automation_disabled": 2])
                try await Self.event(api, workspace, "ann@example.com", "activated")
                clock.advance(by: 4 * Self.day)
                try await Self.settle(tidings)
                #expect(Self.inbox(peer) == ["ann@example.com": ["Welcome"], "bob@example.com": ["Welcome"]])
                let audit = try await tidings.audit.list(workspaceId: workspace.id, filter: .init(action: "automation.status_changed"), cursor: nil, limit: 10)
                #expect(audit.items.first?.change.summary["enrolmentsCancelled"] == .number(2))
                #expect(audit.items.first?.change.summary["to"] == .string("disabled"))
            }
        }
    }

    @Test("A pending send is cancelled with the reason when the contact is deleted, bounced, or (marketing only) unsubscribed", arguments: TestBackend.all)
    func contactChangesCancelPendingSends(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "reply", "--reply-at", "rcpt", "--reply", "550 5.1.1 No such user", "--reply-for", "bounce@example.com"]) { peer in
            let clock = TestClock()
            try await withAPI(backend, clock: clock) { api, tidings in
                let workspace = try await Self.setUp(api, tidings, peer: peer)
                let steps: [[String: Any]] = [
                    ["type": "send", "templateSlug": "welcome"], ["type": "wait", "duration": ["amount": 1, "unit": "days"]], ["type": "send", "templateSlug": "tips"],
                ]
                let marketing = try await Self.create(api, workspace, [
                    "name": "News", "triggerEvent": "signup", "marketing": true, "status": "enabled", "steps": steps,
                ])
                let transactional = try await Self.create(api, workspace, [
                    "name": "Account", "triggerEvent": "signup", "status": "enabled", "steps": steps,
                ])
                for email in ["stay@example.com", "gone@example.com", "bounce@example.com", "unsub@example.com"] {
                    try await Self.event(api, workspace, email, "signup")
                }
                try await Self.settle(tidings)
                #expect(try await api.get("/v1/contacts/bounce@example.com", key: workspace.key).json["status"] as? String == "bounced")
                #expect(try await api.delete("/v1/contacts/gone@example.com", key: workspace.key).status.code < 300)
                // Unsubscribing is the preference page's business; here the contact's status is set as it would.
                try await TenantScope.with(.workspace(workspace.id)) {
                    let vault = try await tidings.keyring.vault(for: workspace.id)
                    try await tidings.database.transaction { db in
                        let contacts = ContactRepository(db, vault: vault)
                        let id = try #require(try await contacts.findId(email: try EmailAddress("unsub@example.com")))
                        try await contacts.setStatus(contactId: id, .unsubscribed, at: clock.now)
                    }
                }
                for id in [marketing, transactional] {
                    let gone = try await Self.enrolments(api, workspace, id).first { $0["contactId"] is NSNull }
                    #expect(gone?["state"] as? String == "cancelled" && gone?["reason"] as? String == "contact_deleted", "cancelled as the contact was deleted")
                    #expect(gone?["email"] is NSNull)
                }
                clock.advance(by: Self.day)
                try await Self.settle(tidings)
                let tips = Self.inbox(peer).mapValues { $0.filter { $0 == "Tips" }.count }
                #expect(tips["stay@example.com"] == 2, "both automations send to an active contact")
                #expect(tips["unsub@example.com"] == 1, "the transactional automation still sends to an unsubscribed contact")
                #expect(tips["gone@example.com"] ?? 0 == 0 && tips["bounce@example.com"] ?? 0 == 0, "\(tips)")

                let news = try await Self.stats(api, workspace, marketing)
                #expect(news["reasons"] as? [String: Int] == ["contact_deleted": 1, "contact_bounced": 1, "contact_unsubscribed": 1])
                #expect(news["enrolled"] as? Int == 4 && news["completed"] as? Int == 1 && news["cancelled"] as? Int == 3 && news["inProgress"] as? Int == 0)
                let account = try await Self.stats(api, workspace, transactional)
                #expect(account["reasons"] as? [String: Int] == ["contact_deleted": 1, "contact_bounced": 1])
                #expect(account["completed"] as? Int == 2 && account["cancelled"] as? Int == 2)
                // Sent counts the messages queued: 4 welcomes (one suppressed by the bounce is still a
                // queued message), then tips for those still there.
                #expect(news["sent"] as? Int == 5 && account["sent"] as? Int == 6)
            }
        }
    }

    // MARK: Requests

    @Test("Bad bodies are 4xx naming the field path; enabling needs existing templates; steps in use keep their shape", arguments: TestBackend.all)
    func validation(backend: TestBackend) async throws {
        try await withAPI(backend, clock: TestClock()) { api, tidings in
            let workspace = try await Self.setUp(api, tidings, peer: nil)
            let cases: [([String: Any], Int, String, String)] = [
                (["name": "n", "triggerEvent": "e"], 422, "missing_field", "templateSlug"),
                (["name": "n", "triggerEvent": "e", "steps": [["type": "send", "templateSlug": "welcome"], ["type": "wait", "duration": ["amount": 1, "unit": "weeks"]]]], 422, "invalid_duration", "steps[1].duration.unit"),
                (["name": "n", "triggerEvent": "e", "steps": [["type": "send", "templateSlug": "welcome"], ["type": "send"]]], 422, "missing_field", "steps[1].templateSlug"),
                (["name": "n", "triggerEvent": "e", "steps": [["type": "condition", "filter": ["match": "some", "conditions": []]], ["type": "send", "templateSlug": "welcome"]]], 422, "invalid_segment_filter", "steps[0].filter.match"),
                (["name": "n", "triggerEvent": "e", "templateSlug": "welcome", "extra": 1], 422, "unknown_field", "extra"),
                (["name": "n", "triggerEvent": "e", "templateSlug": "nope", "status": "enabled"], 422, "unknown_template", "templateSlug"),
                (["name": "n", "triggerEvent": "e", "status": "enabled", "steps": [["type": "send", "templateSlug": "welcome"], ["type": "send", "templateSlug": "nope"]]], 422, "unknown_template", "steps[1].templateSlug"),
            ]
            for (body, status, code, field) in cases {
                let reply = try await api.post("/v1/automations", key: workspace.key, json: body)
                #expect(reply.status.code == status && reply.errorCode == code && reply.errorField == field, "\(body): \(reply.body)")
            }
            #expect(try await api.get("/v1/automations", key: workspace.key).data.isEmpty, "nothing was stored")

            // A draft may name a template to be written later; enabling it may not.
            let draft = try await Self.create(api, workspace, ["name": "Later", "triggerEvent": "e", "templateSlug": "later"])
            let enabling = try await api.request(.patch, "/v1/automations/\(draft)", key: workspace.key, json: ["status": "enabled"])
            #expect(enabling.status == .unprocessableContent && enabling.errorCode == "unknown_template" && enabling.errorField == "templateSlug")
            let wrongType = try await api.request(.patch, "/v1/automations/\(draft)", key: workspace.key, json: ["steps": [["type": "wait"]]])
            #expect(wrongType.errorField == "steps[0].duration")

            // Steps with enrolments in progress may change, but not in number or kind.
            let running = try await Self.create(api, workspace, [
                "name": "Running", "triggerEvent": "go", "status": "enabled", "steps": [
                    ["type": "wait", "duration": ["amount": 1, "unit": "days"]], ["type": "send", "templateSlug": "welcome"],
                ],
            ])
            try await Self.event(api, workspace, "ann@example.com", "go")
            try await Self.settle(tidings)
            let reshaped = try await api.request(.patch, "/v1/automations/\(running)", key: workspace.key, json: ["steps": [["type": "send", "templateSlug": "welcome"]]])
            #expect(reshaped.status == .conflict && reshaped.errorCode == "steps_in_use")
            let retimed = try await api.request(.patch, "/v1/automations/\(running)", key: workspace.key, json: ["steps": [
                ["type": "wait", "duration": ["amount": 2, "unit": "days"]], ["type": "send", "templateSlug": "tips"],
            ]])
            #expect(retimed.status == .ok, "\(retimed.body)")

            // Unknown ids, another workspace's automation, and missing scopes.
            #expect(try await api.get("/v1/automations/aut_nope", key: workspace.key).errorCode == "automation_not_found")
            #expect(try await api.get("/v1/automations/nonsense", key: workspace.key).status == .notFound)
            let other = try await tidings.makeWorkspace(name: "Other")
            #expect(try await api.get("/v1/automations/\(running)", key: other.key).status == .notFound)
            #expect(try await api.request(.patch, "/v1/automations/\(running)", key: other.key, json: ["status": "disabled"]).status == .notFound)
            #expect(try await api.delete("/v1/automations/\(running)", key: other.key).status == .notFound)
            #expect(try await api.get("/v1/automations", key: other.key).data.isEmpty)
            let reader = try await api.post("/v1/api-keys", key: workspace.key, json: ["name": "r", "scopes": ["automations:read"]])
            let readerKey = try #require(reader.json["secret"] as? String)
            #expect(try await api.get("/v1/automations/\(running)", key: readerKey).status == .ok)
            #expect(try await api.delete("/v1/automations/\(running)", key: readerKey).errorCode == "insufficient_scope")
            let contactsOnly = try await api.post("/v1/api-keys", key: workspace.key, json: ["name": "c", "scopes": ["contacts:write"]])
            let contactsKey = try #require(contactsOnly.json["secret"] as? String)
            #expect(try await api.get("/v1/automations", key: contactsKey).errorCode == "insufficient_scope")

            let paused = try await api.request(.patch, "/v1/automations/\(running)", key: workspace.key, json: ["status": "paused"])
            #expect(paused.json["status"] as? String == "paused")

            // Deleting removes the automation and its enrolments; the changes are audited.
            #expect(try await api.delete("/v1/automations/\(running)", key: workspace.key).status == .noContent)
            #expect(try await api.get("/v1/automations/\(running)", key: workspace.key).status == .notFound)
            let actions = try await tidings.audit.list(workspaceId: workspace.id, filter: .init(), cursor: nil, limit: 100).items.map(\.change.action)
            for action in ["automation.created", "automation.updated", "automation.status_changed", "automation.deleted"] {
                #expect(actions.contains(action), "\(action) audited")
            }
        }
    }
}
