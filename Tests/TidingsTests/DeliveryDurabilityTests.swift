import Foundation
import Synchronization
import Testing

/// The queue's promise, tested as an operator would break it: `tidings serve` is killed with
/// SIGKILL in the middle of a burst of messages and started again; every message it had
/// answered 202 for reaches the SMTP server (at least once, always with the same Message-ID).
@Suite("Delivery durability")
struct DeliveryDurabilityTests {
    @Test("Every accepted message is delivered after a SIGKILL mid-burst and a restart", arguments: TestBackend.all)
    func acceptedMessagesSurviveAKill(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            let scratch = try await Scratch.make(backend)
            // Short leases, so the killed process's claims are taken over quickly.
            let environment = ["TIDINGS_DELIVERY_LEASE_SECONDS": "3"]
            let server = ServerProcess(dataDirectory: scratch.directory, databaseURL: scratch.databaseURL, ownerURL: scratch.ownerURL, extraEnvironment: environment)
            try await server.start()
            let created = try await server.command(["workspace", "create", "--name", "Kill", "--owner-email", "kill@docs.test", "--json"])
            let key = try #require((try JSONSerialization.jsonObject(with: Data(created.stdout.utf8)) as? [String: String])?["apiKey"])
            let base = server.baseURL
            let auth = ["--header", "Authorization: Bearer \(key)", "--header", "Content-Type: application/json"]
            let template = try await curl(["\(base)/v1/templates"] + auth + ["--data-raw", #"{"slug": "receipt", "subject": "Receipt {{ n }}", "from": "Shop <shop@acme.test>", "html": "<p>Receipt {{ n }}</p>"}"#])
            #expect(template.status == 201)
            // 5 messages a second: the burst is still being delivered when the process dies, however
            // slowly a busy machine accepts it.
            let smtp = try await curl(["\(base)/v1/email-servers"] + auth + ["--data-raw", #"{"name": "peer", "host": "127.0.0.1", "port": \#(peer.port), "security": "none", "maxConnections": 2, "rateLimit": 5}"#])
            #expect(smtp.status == 201)

            let accepted = AcceptedIds()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for client in 0..<6 {
                    group.addTask {
                        for index in 0..<30 {
                            // Once the server is gone, curl fails: that client stops.
                            guard let reply = try? await curl(["\(base)/v1/messages"] + auth + [
                                "--data-raw", #"{"rcpt": "buyer\#(client)@example.com", "templateSlug": "receipt", "variables": {"n": \#(index)}}"#,
                            ]) else { return }
                            if reply.status == 202, let id = reply.json["id"] as? String { accepted.ids.withLock { $0.append(id) } }
                        }
                    }
                }
                group.addTask {
                    while accepted.ids.withLock({ $0.count }) < 40 { try await Task.sleep(for: .milliseconds(10)) }
                    await server.kill()
                }
                try await group.waitForAll()
            }
            let acceptedIds = accepted.ids.withLock { $0 }
            let deliveredBeforeRestart = peer.received().count
            #expect(deliveredBeforeRestart < acceptedIds.count, "the kill came while messages were still queued")

            let restarted = ServerProcess(dataDirectory: scratch.directory, databaseURL: scratch.databaseURL, ownerURL: scratch.ownerURL, extraEnvironment: environment)
            try await restarted.start()
            var undelivered = Set(acceptedIds)
            let deadline = Date().addingTimeInterval(60)
            while !undelivered.isEmpty, Date() < deadline {
                let ids = Self.messageIds(in: peer.received())
                undelivered.subtract(ids.keys)
                if !undelivered.isEmpty { try await Task.sleep(for: .milliseconds(200)) }
            }
            // Every accepted message arrived; repeats (sent before the kill, not yet recorded) carry the same Message-ID.
            #expect(undelivered.isEmpty, "\(undelivered.count) of \(acceptedIds.count) accepted messages never arrived")
            for id in acceptedIds.prefix(5) {
                let reply = try await curl(["\(restarted.baseURL)/v1/messages/\(id)", "--header", "Authorization: Bearer \(key)"])
                #expect(reply.json["status"] as? String == "delivered", "\(id): \(reply.json)")
            }
            _ = try await restarted.stop()
            await scratch.remove()
        }
    }

    final class AcceptedIds: Sendable {
        let ids = Mutex<[String]>([])
    }

    /// Message id → times received, from the Message-ID headers `<msg_…@acme.test>`.
    static func messageIds(in messages: [SMTPPeer.Received]) -> [String: Int] {
        var counts: [String: Int] = [:]
        for message in messages {
            guard let line = message.text.components(separatedBy: "\r\n").first(where: { $0.hasPrefix("Message-ID: <") }),
                  let at = line.firstIndex(of: "@") else { continue }
            let id = String(line[line.index(line.startIndex, offsetBy: "Message-ID: <".count)..<at])
            counts[id, default: 0] += 1
        }
        return counts
    }
}
