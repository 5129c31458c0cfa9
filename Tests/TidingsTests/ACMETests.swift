import Foundation
import Hummingbird
import Testing
import TidingsTLS
@testable import TidingsApp

/// Certificates from an ACME CA (RFC 8555): Pebble validates HTTP-01 against Tidings' own
/// plain-HTTP port, issues, and Tidings renews on time.
@Suite("ACME certificates", .serialized)
struct ACMETests {
    @Test("Tidings orders a certificate from Pebble over HTTP-01, keeps its keys sealed, and renews when a third of the lifetime remains")
    func issuesAndRenews() async throws {
        let httpPort = try MotoServer.freePort()
        let pebble = try await Pebble(httpPort: httpPort)
        defer { pebble.stop() }
        let clock = TestClock()
        clock.advance(by: Date().timeIntervalSince(clock.now))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-acme-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }

        try await withTidings(.sqlite, clock: clock) { tidings in
            let challenges = ACMEChallenges()
            // The plain-HTTP port, exactly as `serve` builds it, where Pebble fetches the answers.
            let plain = Application(
                router: try tidings.makeRouter(transport: tidings.transport(.plainHTTP, challenges: challenges)),
                configuration: .init(address: .hostname("127.0.0.1", port: httpPort))
            )
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await plain.runService(gracefulShutdownSignals: []) }
                try await waitForPort(httpPort)
                let manager = ACMECertificates(
                    settings: .init(
                        directoryURL: URL(string: pebble.directoryURL)!, email: "ops@acme.test", caFile: pebble.testCAFile,
                        directory: directory.path, names: ["localhost"]
                    ),
                    challenges: challenges, sealer: HTTPSCertificates.sealer(tidings.keyring, directoryURL: URL(string: pebble.directoryURL)!),
                    now: { clock.now }, logger: TestLog.logger("acme"), pollInterval: .milliseconds(100)
                )
                let interim = try LocalCertificateAuthority(directory: directory.appendingPathComponent("interim").path).ensure(hostnames: [])
                let served = ServerCertificates(try .init(chainPEM: interim.certificateChainPEM, keyPEM: interim.privateKeyPEM, source: "local-ca"))
                await manager.use(served)

                let issued = await manager.maintain()
                let firstError = await manager.lastError
                #expect(issued, "\(firstError ?? "")")
                let first = served.credentials
                #expect(first.source == "acme" && first.names == ["localhost"])
                #expect(first.chain.count >= 2, "the leaf comes with Pebble's intermediate")
                try await expectChainVerifies(directory.appendingPathComponent("certificate.pem"), root: try await pebble.rootCertificate())

                // The keys on disk are sealed; the chain is public.
                for sealed in ["account.key.sealed", "certificate.key.sealed"] {
                    let text = try String(contentsOf: directory.appendingPathComponent(sealed), encoding: .utf8)
                    #expect(!text.contains("PRIVATE KEY") && !text.isEmpty, "\(sealed)")
                }
                // A restart finds the certificate and serves it without asking the CA.
                let restarted = ACMECertificates(
                    settings: await manager.settings, challenges: challenges,
                    sealer: HTTPSCertificates.sealer(tidings.keyring, directoryURL: URL(string: pebble.directoryURL)!),
                    now: { clock.now }, logger: TestLog.logger("acme")
                )
                let cached = try #require(try await restarted.loadCached())
                #expect(cached.notValidAfter == first.notValidAfter)

                // Renewal: not before a third of the lifetime remains (less up to a thirtieth as jitter), then at once.
                let renewAt = try #require(await manager.renewalTime)
                let lifetime = first.notValidAfter.timeIntervalSince(first.notValidBefore)
                let third = first.notValidAfter.addingTimeInterval(-lifetime / 3)
                #expect(renewAt <= third && renewAt >= third.addingTimeInterval(-lifetime / 30 - 1))
                clock.advance(by: renewAt.timeIntervalSince(clock.now) - 3600)
                let early = await manager.maintain()
                #expect(!early)
                #expect(served.credentials.notValidBefore == first.notValidBefore, "nothing renewed early")
                clock.advance(by: 7200)
                let renewed = await manager.maintain()
                let renewError = await manager.lastError
                #expect(renewed, "\(renewError ?? "")")
                let second = served.credentials
                #expect(second.notValidBefore != first.notValidBefore || second.notValidAfter != first.notValidAfter || second.chain != first.chain)
                // The next renewal is planned from the new certificate's own lifetime.
                let next = try #require(await manager.renewalTime)
                let newThird = second.notValidAfter.addingTimeInterval(-second.notValidAfter.timeIntervalSince(second.notValidBefore) / 3)
                #expect(next <= newThird && next >= newThird.addingTimeInterval(-lifetime / 30 - 1))
                group.cancelAll()
            }
        }
    }

    @Test("A CA that cannot be reached is retried with growing pauses, and the reason is kept")
    func failuresBackOff() async throws {
        let clock = TestClock()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-acme-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try await withTidings(.sqlite, clock: clock) { tidings in
            let unreachable = URL(string: "https://localhost:\(try MotoServer.freePort())/dir")!
            let manager = ACMECertificates(
                settings: .init(directoryURL: unreachable, email: nil, caFile: nil, directory: directory.path, names: ["localhost"]),
                challenges: ACMEChallenges(), sealer: HTTPSCertificates.sealer(tidings.keyring, directoryURL: unreachable),
                now: { clock.now }, logger: TestLog.logger("acme")
            )
            // Each step: move the clock, make one round, and see how many attempts have failed.
            for (advance, expected) in [(0.0, 1), (30, 1), (40, 2), (100, 2), (40, 3)] {
                clock.advance(by: advance)
                let changed = await manager.maintain()
                let failures = await manager.failures
                #expect(!changed)
                // Within a pause nothing is tried; the pauses double (1, 2, 4 minutes, ±10 %).
                #expect(failures == expected, "after +\(advance) s")
            }
            let reason = await manager.lastError
            #expect(reason?.isEmpty == false)
        }
    }

    @Test("tidings serve with ACME serves Pebble's certificate once issued, and again after a restart")
    func serveWithACME() async throws {
        let httpPort = try MotoServer.freePort()
        let pebble = try await Pebble(httpPort: httpPort)
        defer { pebble.stop() }
        let scratch = try await Scratch.make(.sqlite)
        let environment = [
            "TIDINGS_ACME_DIRECTORY_URL": pebble.directoryURL, "TIDINGS_ACME_CA_FILE": pebble.testCAFile,
            "TIDINGS_ACME_EMAIL": "ops@acme.test", "TIDINGS_PUBLIC_URL": "https://localhost",
        ]
        let server = ServerProcess(
            dataDirectory: scratch.directory, databaseURL: scratch.databaseURL, ownerURL: scratch.ownerURL,
            extraEnvironment: environment, transport: .https, httpPort: httpPort
        )
        try await server.start()
        let root = scratch.directory.appendingPathComponent("pebble-root.pem")
        try Data(try await pebble.rootCertificate().utf8).write(to: root)
        let deadline = Date().addingTimeInterval(60)
        while !server.log.contains("ACME certificate in service"), Date() < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(server.log.contains("ACME certificate in service"), "\(server.log.suffix(3000))")
        let health = try await run("/usr/bin/curl", ["-sS", "--cacert", root.path, "\(server.baseURL)/healthz"])
        #expect(health.status == 0 && health.stdout.contains("ok"), "\(health.stderr)")
        #expect(try await server.stop() == 0)

        let restarted = ServerProcess(
            dataDirectory: scratch.directory, databaseURL: scratch.databaseURL, ownerURL: scratch.ownerURL,
            extraEnvironment: environment, transport: .https, httpPort: httpPort
        )
        try await restarted.start()
        #expect(restarted.log.contains("certificate=acme"), "the cached certificate is served from the start")
        let again = try await run("/usr/bin/curl", ["-sS", "--cacert", root.path, "\(restarted.baseURL)/healthz"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try await restarted.stop() == 0)
        await scratch.remove()
    }

    private func waitForPort(_ port: Int) async throws {
        for _ in 0..<100 {
            if try await run("/usr/bin/curl", ["-sS", "-o", "/dev/null", "http://127.0.0.1:\(port)/healthz"]).status == 0 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ServerProcess.Failure(description: "nothing listens on \(port)")
    }

    /// `openssl verify` of the stored chain (leaf, then intermediates) against Pebble's root.
    private func expectChainVerifies(_ chainFile: URL, root: String) async throws {
        let chain = try String(contentsOf: chainFile, encoding: .utf8)
        let blocks = chain.components(separatedBy: "-----END CERTIFICATE-----").filter { $0.contains("BEGIN") }
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) + "\n-----END CERTIFICATE-----\n" }
        let base = chainFile.deletingLastPathComponent()
        let leaf = base.appendingPathComponent("leaf.pem"), rest = base.appendingPathComponent("intermediates.pem")
        let rootFile = base.appendingPathComponent("root.pem")
        try Data(blocks[0].utf8).write(to: leaf)
        try Data(blocks.dropFirst().joined().utf8).write(to: rest)
        try Data(root.utf8).write(to: rootFile)
        let verified = try await run("/usr/bin/openssl", ["verify", "-CAfile", rootFile.path, "-untrusted", rest.path, leaf.path])
        #expect(verified.status == 0, "\(verified.stdout) \(verified.stderr)")
    }
}
