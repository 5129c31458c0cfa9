import Foundation
import HTTPTypes
import SQLKit
import Testing
import TidingsApp
import TidingsCrypto
import TidingsDomain
import TidingsServices
import TidingsStorage

@Suite("Audit log")
struct AuditTests {
    /// Appends `count` events to the workspace's stream (after the 2 of its creation).
    static func seed(_ tidings: Tidings, stream: String, count: Int) async throws {
        let audit = try await tidings.environment.auditRecorder()
        try await tidings.database.transaction { db in
            try await audit.record((0..<count).map { index in
                (stream, AuditActor.tester, AuditChange("contact.updated", target: ("contact", "ct_\(index)"), summary: ["n": .number(Double(index))]))
            }, db: db)
        }
    }

    /// What someone with the owner's access to the database does first: lift the guards.
    @Sendable static func liftGuards(_ db: any SQLDatabase, backend: TestBackend) async throws {
        if backend == .sqlite {
            for trigger in ["audit_events_no_update", "audit_events_no_delete", "audit_checkpoints_no_update", "audit_checkpoints_no_delete"] {
                try await db.raw("DROP TRIGGER IF EXISTS \(ident: trigger)").run()
            }
        } else {
            try await db.raw("ALTER TABLE audit_events DISABLE TRIGGER USER").run()
            try await db.raw("ALTER TABLE audit_checkpoints DISABLE TRIGGER USER").run()
        }
    }

    @Test("Every change through the API is recorded with actor, action, target and a pseudonymised summary", arguments: TestBackend.all)
    func apiChangesAreRecorded(backend: TestBackend) async throws {
        try await withAPI(backend) { client, tidings in
            let workspace = try await tidings.makeWorkspace()
            let agent: HTTPFields = [.userAgent: "audit-test/1.0"]
            #expect(try await client.request(.post, "/v1/contacts", key: workspace.key, json: ["email": "ada@example.com", "plan": "pro"], headers: agent).status == .created)
            #expect(try await client.request(.post, "/v1/contacts", key: workspace.key, json: ["email": "ada@example.com", "plan": NSNull()], headers: agent).status == .ok)
            #expect(try await client.post("/v1/events", key: workspace.key, json: ["email": "bob@example.com", "slug": "signed_up"]).status == .created)
            let key = try await client.post("/v1/api-keys", key: workspace.key, json: ["name": "ci", "scopes": ["contacts:read"]])
            let keyId = try #require(key.json["id"] as? String)
            #expect(try await client.delete("/v1/api-keys/\(keyId)", key: workspace.key).status == .ok)
            #expect(try await client.get("/v1/contacts/ada@example.com/export", key: workspace.key).status == .ok)
            #expect(try await client.delete("/v1/contacts/ada@example.com", key: workspace.key).status == .ok)

            let reply = try await client.get("/v1/audit-events?order=asc&limit=500", key: workspace.key)
            #expect(reply.status == .ok)
            let actions = reply.data.compactMap { $0["action"] as? String }
            #expect(actions == [
                "workspace.created", "api_key.created", "contact.created", "contact.updated", "contact.created", "event.recorded",
                "api_key.created", "api_key.revoked", "contact.exported", "contact.deleted",
            ])
            let created = reply.data[2]
            let actor = try #require(created["actor"] as? [String: Any])
            #expect(actor["kind"] as? String == "api_key")
            #expect((actor["id"] as? String)?.hasPrefix("key_") == true)
            #expect(actor["userAgent"] as? String == "audit-test/1.0")
            #expect((created["target"] as? [String: Any])?["kind"] as? String == "contact")
            let summary = try #require(created["summary"] as? [String: Any])
            #expect((summary["email"] as? String)?.hasPrefix("p_") == true)
            #expect(summary["set"] as? [String] == ["plan"])
            #expect(!reply.body.contains("ada@example.com") && !reply.body.contains("bob@example.com") && !reply.body.contains("\"pro\""))
            // The pseudonym is stable within the workspace, so one person's events correlate.
            let deleted = try #require(reply.data.last?["summary"] as? [String: Any])
            #expect(deleted["email"] as? String == summary["email"] as? String)
            #expect(reply.data.map { $0["sequence"] as? Int } == Array(1...10))
            let verified = try await tidings.audit.verify(stream: workspace.id)
            #expect(verified.first?.problem == nil)
            #expect(verified.first?.events == 10)
        }
    }

    @Test("Filters, cursor pagination and the JSON Lines export", arguments: TestBackend.all)
    func listingAndExport(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { client, tidings in
            let workspace = try await tidings.makeWorkspace()
            let start = clock.now
            for index in 0..<7 {
                clock.advance(by: 60)
                _ = try await client.post("/v1/contacts", key: workspace.key, json: ["email": "p\(index)@example.com"])
            }
            _ = try await client.delete("/v1/contacts/p3@example.com", key: workspace.key)

            var seen: [String] = []
            var cursor: String?
            repeat {
                let page = try await client.get("/v1/audit-events?limit=3" + (cursor.map { "&cursor=\($0)" } ?? ""), key: workspace.key)
                #expect(page.status == .ok)
                seen += page.data.compactMap { $0["id"] as? String }
                cursor = page.json["nextCursor"] as? String
            } while cursor != nil
            #expect(seen.count == 10 && Set(seen).count == 10, "every event once, newest first over pages")

            let contactEvents = try await client.get("/v1/audit-events?action=contact.*", key: workspace.key)
            #expect(contactEvents.data.count == 8)
            let deletions = try await client.get("/v1/audit-events?action=contact.deleted", key: workspace.key)
            let target = try #require((deletions.data.first?["target"] as? [String: Any])?["id"] as? String)
            #expect(try await client.get("/v1/audit-events?target=\(target)", key: workspace.key).data.count == 2)
            let since = Timestamp.format(start.addingTimeInterval(60 * 3))
            let until = Timestamp.format(start.addingTimeInterval(60 * 5))
            let window = try await client.get("/v1/audit-events?since=\(since)&until=\(until)", key: workspace.key)
            #expect(window.data.count == 2)
            #expect(try await client.get("/v1/audit-events?actor=cli:nobody", key: workspace.key).data.isEmpty)

            let export = try await client.get("/v1/audit-events?format=jsonl&order=asc", key: workspace.key)
            #expect(export.status == .ok)
            #expect(export.headers[.contentType]?.hasPrefix("application/x-ndjson") == true)
            let lines = export.body.split(separator: "\n")
            #expect(lines.count == 10)
            let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any]
            #expect(first?["action"] as? String == "workspace.created")

            #expect(try await client.get("/v1/audit-events?since=yesterday", key: workspace.key).errorField == "since")
            #expect(try await client.get("/v1/audit-events?order=sideways", key: workspace.key).errorField == "order")
            #expect(try await client.get("/v1/audit-events?format=xml", key: workspace.key).errorField == "format")
            #expect(try await client.get("/v1/audit-events?cursor=bogus!", key: workspace.key).errorField == "cursor")
        }
    }

    @Test("Only admin keys read the audit log, and each workspace sees only its own", arguments: TestBackend.all)
    func accessIsScoped(backend: TestBackend) async throws {
        try await withAPI(backend) { client, tidings in
            let a = try await tidings.makeWorkspace(name: "A")
            let b = try await tidings.makeWorkspace(name: "B")
            _ = try await client.post("/v1/contacts", key: a.key, json: ["email": "ada@example.com"])
            let writer = try await client.post("/v1/api-keys", key: a.key, json: ["name": "w", "scopes": ["contacts:write"]])
            let writerKey = try #require(writer.json["secret"] as? String)
            #expect(try await client.get("/v1/audit-events", key: writerKey).status == .forbidden)
            #expect(try await client.get("/v1/audit-events", key: nil).status == .unauthorized)
            let seenByB = try await client.get("/v1/audit-events?limit=500", key: b.key)
            #expect(seenByB.data.allSatisfy { ($0["action"] as? String)?.hasPrefix("contact.") == false })
            #expect(seenByB.data.count == 2, "B's own workspace.created and api_key.created")
        }
    }

    @Test("When the audit write fails, the change fails with it", arguments: TestBackend.all)
    func auditFailureFailsTheChange(backend: TestBackend) async throws {
        try await withAPI(backend) { client, tidings in
            let workspace = try await tidings.makeWorkspace()
            try await tidings.adminDatabase.transaction { db in
                if backend == .sqlite {
                    try await db.raw("CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'audit store unavailable'); END").run()
                } else {
                    try await db.raw("CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit store unavailable'; END $$").run()
                    try await db.raw("CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_audit()").run()
                }
            }
            let reply = try await client.post("/v1/contacts", key: workspace.key, json: ["email": "lost@example.com"])
            #expect(reply.status == .internalServerError)
            let events = try await client.post("/v1/events", key: workspace.key, json: ["email": "lost@example.com", "slug": "x"])
            #expect(events.status == .internalServerError)
            let count = try await tidings.database.read { db in
                try await db.raw("SELECT (SELECT COUNT(*) FROM contacts) + (SELECT COUNT(*) FROM events) AS n").first()!.decode(column: "n", as: Int.self)
            }
            #expect(count == 0, "neither the contact nor the event was stored without its audit event")
        }
    }

    @Test("The database refuses to change or delete audit rows, but lets retention clear payloads", arguments: TestBackend.all)
    func rowsAreAppendOnly(backend: TestBackend) async throws {
        try await withTidings(backend) { tidings in
            let workspace = try await tidings.makeWorkspace()
            try await tidings.audit.checkpointHeads()
            for statement in [
                "UPDATE audit_events SET action = 'nothing.happened'",
                "UPDATE audit_events SET hash = 'x'",
                "UPDATE audit_events SET summary = '{}'",
                "DELETE FROM audit_events",
                "UPDATE audit_checkpoints SET signature = 'x'",
                "DELETE FROM audit_checkpoints",
            ] {
                await #expect(throws: (any Error).self, "\(statement)") {
                    try await tidings.database.transaction { db in try await db.raw(SQLQueryString(statement)).run() }
                }
            }
            #expect(try await tidings.audit.verify(stream: workspace.id).first?.problem == nil)
            let cleared = try await tidings.database.transaction { db in
                try await AuditRepository(db, stream: workspace.id).dropPayloads(before: Date().addingTimeInterval(60))
            }
            #expect(cleared == 2)
            let result = try await tidings.audit.verify(stream: workspace.id)
            #expect(result.first?.problem == nil)
            #expect(result.first?.payloadsDropped == 2)
        }
    }

    @Test("audit verify names the first event that was edited, deleted, inserted, reordered or cut off", arguments: TestBackend.all)
    func tamperingIsDetected(backend: TestBackend) async throws {
        try await withTidings(backend) { tidings in
            let workspace = try await tidings.makeWorkspace()
            // 2 events from creating the workspace, then 248 more: checkpoints at 100 and 200.
            try await Self.seed(tidings, stream: workspace.id, count: 248)
            #expect(try await tidings.audit.verify(stream: workspace.id).first?.problem == nil)
            #expect(try await tidings.audit.verify(stream: workspace.id).first?.checkpoints == 2)

            func id(at sequence: Int) async throws -> String {
                try await tidings.database.read { db in
                    try await db.raw("SELECT id FROM audit_events WHERE stream = \(bind: workspace.id) AND seq = \(bind: sequence)").first()!
                        .decode(column: "id", as: String.self)
                }
            }
            func tamper(_ statements: [SQLQueryString]) async throws {
                try await tidings.adminDatabase.transaction { db in
                    try await Self.liftGuards(db, backend: backend)
                    for statement in statements { try await db.raw(statement).run() }
                }
            }
            func problem() async throws -> String {
                try #require(try await tidings.audit.verify(stream: workspace.id).first?.problem)
            }
            let stream = workspace.id

            // Edit one field of event 5.
            let edited = try await id(at: 5)
            try await tamper(["UPDATE audit_events SET action = 'contact.viewed' WHERE stream = \(bind: stream) AND seq = 5"])
            #expect(try await problem().contains("\(edited) (position 5) was changed"))
            try await tamper(["UPDATE audit_events SET action = 'contact.updated' WHERE stream = \(bind: stream) AND seq = 5"])
            #expect(try await tidings.audit.verify(stream: stream).first?.problem == nil)

            // Swap events 10 and 11.
            let eleventh = try await id(at: 11)
            try await tamper([
                "UPDATE audit_events SET seq = 1000010 WHERE stream = \(bind: stream) AND seq = 10",
                "UPDATE audit_events SET seq = 10 WHERE stream = \(bind: stream) AND seq = 11",
                "UPDATE audit_events SET seq = 11 WHERE stream = \(bind: stream) AND seq = 1000010",
            ])
            #expect(try await problem().contains("\(eleventh) (position 10) does not follow"))
            try await tamper([
                "UPDATE audit_events SET seq = 1000010 WHERE stream = \(bind: stream) AND seq = 10",
                "UPDATE audit_events SET seq = 10 WHERE stream = \(bind: stream) AND seq = 11",
                "UPDATE audit_events SET seq = 11 WHERE stream = \(bind: stream) AND seq = 1000010",
            ])
            #expect(try await tidings.audit.verify(stream: stream).first?.problem == nil)

            // Insert a forged event after 20, with a correct hash of its own, renumbering the rest.
            let previous = try await tidings.database.read { db in
                try await db.raw("SELECT hash FROM audit_events WHERE stream = \(bind: stream) AND seq = 20").first()!.decode(column: "hash", as: String.self)
            }
            let twentyFirst = try await id(at: 21)
            try await tamper([
                "UPDATE audit_events SET seq = seq + 1000000 WHERE stream = \(bind: stream) AND seq > 20",
                "UPDATE audit_events SET seq = seq - 999999 WHERE stream = \(bind: stream) AND seq > 1000000",
                """
                INSERT INTO audit_events (stream, seq, id, occurred_at, actor_kind, actor_id, action, summary, payload_hash, prev_hash, hash)
                VALUES (\(bind: stream), 21, 'au_forged', '2026-01-01T00:00:00.000Z', 'system', 'x', 'contact.deleted', '{}', 'p', \(bind: previous), 'h')
                """,
            ])
            let forged = try await problem()
            #expect(forged.contains("au_forged (position 21) was changed") || forged.contains(twentyFirst))

            // Delete event 30 (on a fresh copy of the log: start over).
        }
        try await withTidings(backend) { tidings in
            let workspace = try await tidings.makeWorkspace()
            let stream = workspace.id
            try await Self.seed(tidings, stream: stream, count: 248)
            let thirtyFirst = try await tidings.database.read { db in
                try await db.raw("SELECT id FROM audit_events WHERE stream = \(bind: stream) AND seq = 31").first()!.decode(column: "id", as: String.self)
            }
            try await tidings.adminDatabase.transaction { db in
                try await Self.liftGuards(db, backend: backend)
                try await db.raw("DELETE FROM audit_events WHERE stream = \(bind: stream) AND seq = 30").run()
            }
            let deleted = try #require(try await tidings.audit.verify(stream: stream).first?.problem)
            #expect(deleted.contains("positions 30–30 are missing before event \(thirtyFirst)"))

            // Deleting and renumbering so the sequence has no gap still breaks the chain.
            try await tidings.adminDatabase.transaction { db in
                try await db.raw("UPDATE audit_events SET seq = seq + 1000000 WHERE stream = \(bind: stream) AND seq > 30").run()
                try await db.raw("UPDATE audit_events SET seq = seq - 1000001 WHERE stream = \(bind: stream) AND seq > 1000000").run()
            }
            #expect(try #require(try await tidings.audit.verify(stream: stream).first?.problem).contains("\(thirtyFirst) (position 30) does not follow"))
        }
        try await withTidings(backend) { tidings in
            let workspace = try await tidings.makeWorkspace()
            let stream = workspace.id
            try await Self.seed(tidings, stream: stream, count: 248)
            // Cut the tail past the checkpoint at 200 (heads rewritten too, as a careful attacker would).
            try await tidings.adminDatabase.transaction { db in
                try await Self.liftGuards(db, backend: backend)
                try await db.raw("DELETE FROM audit_events WHERE stream = \(bind: stream) AND seq > 150").run()
                try await db.raw("UPDATE audit_heads SET seq = 150 WHERE stream = \(bind: stream)").run()
            }
            let cut = try #require(try await tidings.audit.verify(stream: stream).first?.problem)
            #expect(cut.contains("ends at position 150, but a signed checkpoint covers position 200"))
        }
        try await withTidings(backend) { tidings in
            let workspace = try await tidings.makeWorkspace()
            let stream = workspace.id
            try await Self.seed(tidings, stream: stream, count: 148)
            // Edit event 40 and recompute every hash after it: only the signed checkpoint can tell.
            try await tidings.adminDatabase.transaction { db in
                try await Self.liftGuards(db, backend: backend)
                try await db.raw("UPDATE audit_events SET action = 'contact.viewed' WHERE stream = \(bind: stream) AND seq = 40").run()
                var previous = try await db.raw("SELECT hash FROM audit_events WHERE stream = \(bind: stream) AND seq = 39").first()!.decode(column: "hash", as: String.self)
                for row in try await AuditRepository(db, stream: stream).rows(from: 40, limit: 1000) {
                    let payloadHash = AuditChain.payloadHash(row.payload!)
                    let hash = AuditChain.link(previous: previous, sequence: row.sequence, payloadHash: payloadHash)
                    try await db.raw("""
                        UPDATE audit_events SET payload_hash = \(bind: payloadHash), prev_hash = \(bind: previous), hash = \(bind: hash)
                        WHERE stream = \(bind: stream) AND seq = \(bind: row.sequence)
                        """).run()
                    previous = hash
                }
            }
            let rewritten = try #require(try await tidings.audit.verify(stream: stream).first?.problem)
            #expect(rewritten.contains("up to position 100 differ from what was signed"))
        }
    }

    @Test("Checkpointing the heads covers the newest events, so cutting them off is caught", arguments: TestBackend.all)
    func headCheckpoints(backend: TestBackend) async throws {
        try await withTidings(backend) { tidings in
            let workspace = try await tidings.makeWorkspace()
            #expect(try await tidings.audit.checkpointHeads() == 2, "the workspace's stream and the instance's")
            #expect(try await tidings.audit.checkpointHeads() == 0, "nothing new since")
            try await tidings.adminDatabase.transaction { db in
                try await Self.liftGuards(db, backend: backend)
                try await db.raw("DELETE FROM audit_events WHERE stream = \(bind: workspace.id) AND seq = 2").run()
                try await db.raw("UPDATE audit_heads SET seq = 1 WHERE stream = \(bind: workspace.id)").run()
            }
            let problem = try #require(try await tidings.audit.verify(stream: workspace.id).first?.problem)
            #expect(problem.contains("ends at position 1"))
            #expect(try await tidings.audit.verify(stream: "instance").first?.problem == nil)
        }
    }
}
