import Foundation
import Testing

/// `tidings serve` with no TLS configuration at all, checked from outside: curl with the local
/// CA, and two independent scanners (sslyze, testssl.sh) for protocols, ciphers, the chain and HSTS.
@Suite("HTTPS from outside", .serialized)
struct HTTPSScanTests {
    /// A scanner named by its variable (scripts/test sets it), else found on PATH; its absence fails the test.
    static func tool(_ variable: String, _ name: String) throws -> String {
        if let path = ProcessInfo.processInfo.environment[variable], FileManager.default.isExecutableFile(atPath: path) { return path }
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let path = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw ServerProcess.Failure(description: "\(name) is missing: run scripts/test (it installs it) or set \(variable).")
    }

    @Test("A new install serves HTTPS with its local CA; plain HTTP only redirects and refuses keys; the scanners pass")
    func zeroConfigurationHTTPS() async throws {
        let sslyze = try Self.tool("TIDINGS_SSLYZE", "sslyze")
        let testssl = try Self.tool("TIDINGS_TESTSSL", "testssl")
        let scratch = try await Scratch.make(.sqlite)
        let server = ServerProcess(
            dataDirectory: scratch.directory, databaseURL: scratch.databaseURL, ownerURL: scratch.ownerURL, transport: .https
        )
        try await server.start()
        #expect(server.log.contains("curl --cacert \(server.caFile)"), "the start tells where the CA is")
        let problems = server.log.split(separator: "\n").filter { $0.contains(" error ") || $0.contains(" critical ") }
        #expect(problems.isEmpty, "a first start logs no error: \(problems)")

        // curl trusts the local CA when told to, and nothing else does.
        let health = try await run("/usr/bin/curl", ["-sS", "-D", "-", "--cacert", server.caFile, "\(server.baseURL)/healthz"])
        #expect(health.status == 0, "\(health.stderr)")
        #expect(health.stdout.lowercased().contains("strict-transport-security: max-age=63072000"))
        #expect(health.stdout.contains(#"{"status":"ok"}"#))
        let untrusted = try await run("/usr/bin/curl", ["-sS", "--cacert", "/etc/ssl/certs/ca-certificates.crt", "\(server.baseURL)/healthz"])
        #expect(untrusted.status != 0, "the local CA is not a public one")
        let tls11 = try await run("/usr/bin/curl", ["-sS", "--cacert", server.caFile, "--tls-max", "1.1", "\(server.baseURL)/healthz"])
        #expect(tls11.status != 0, "TLS 1.1 is refused")

        // Plain HTTP: a 308 to HTTPS, and an API key is refused there.
        let redirect = try await run("/usr/bin/curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "\(server.plainURL)/v1/contacts?limit=5"])
        #expect(redirect.stdout == "308 https://localhost:\(server.port)/v1/contacts?limit=5")
        let created = try await server.command(["workspace", "create", "--name", "Scan", "--owner-email", "owner@scan.test", "--json"])
        let key = try #require((try JSONSerialization.jsonObject(with: Data(created.stdout.utf8)) as? [String: String])?["apiKey"])
        let refused = try await curl(["\(server.plainURL)/v1/contacts", "--header", "Authorization: Bearer \(key)"])
        #expect(refused.status == 403)
        let afterwards = try await curl(["--cacert", server.caFile, "\(server.baseURL)/v1/contacts", "--header", "Authorization: Bearer \(key)"])
        #expect(afterwards.status == 401, "the exposed key was revoked")

        try await scanWithSSLyze(sslyze, server: server)
        try await scanWithTestSSL(testssl, server: server)

        #expect(try await server.stop() == 0)
        #expect(!server.log.contains(key))
        await scratch.remove()
    }

    @Test("Behind a trusted TLS-terminating proxy the plain-HTTP port serves the API; anyone else's forwarding headers count for nothing")
    func trustedProxy() async throws {
        let scratch = try await Scratch.make(.sqlite)
        let server = ServerProcess(
            dataDirectory: scratch.directory, databaseURL: scratch.databaseURL, ownerURL: scratch.ownerURL,
            extraEnvironment: ["TIDINGS_TRUSTED_PROXIES": "127.0.0.0/8"], transport: .https
        )
        try await server.start()
        let created = try await server.command(["workspace", "create", "--name", "Proxy", "--owner-email", "owner@proxy.test", "--json"])
        let key = try #require((try JSONSerialization.jsonObject(with: Data(created.stdout.utf8)) as? [String: String])?["apiKey"])
        let proxied = try await run("/usr/bin/curl", [
            "-sS", "-D", "-", "\(server.plainURL)/v1/contacts", "--header", "Authorization: Bearer \(key)",
            "--header", "X-Forwarded-Proto: https", "--header", "X-Forwarded-For: 198.51.100.23, 127.0.0.1",
        ])
        #expect(proxied.stdout.hasPrefix("HTTP/1.1 200"), "\(proxied.stdout)")
        #expect(proxied.stdout.lowercased().contains("strict-transport-security: max-age=63072000"))
        // The access log names the client behind the proxy, truncated.
        try await Task.sleep(for: .milliseconds(200))
        #expect(server.log.contains("client=198.51.100.0"))
        #expect(!server.log.contains("198.51.100.23"))
        #expect(try await server.stop() == 0)
        await scratch.remove()

        // The same request from a peer that is not trusted is plain HTTP with a key in it.
        let other = try await Scratch.make(.sqlite)
        let untrusting = ServerProcess(
            dataDirectory: other.directory, databaseURL: other.databaseURL, ownerURL: other.ownerURL,
            extraEnvironment: ["TIDINGS_TRUSTED_PROXIES": "10.0.0.0/8"], transport: .https
        )
        try await untrusting.start()
        let made = try await untrusting.command(["workspace", "create", "--name", "Proxy", "--owner-email", "owner@proxy.test", "--json"])
        let otherKey = try #require((try JSONSerialization.jsonObject(with: Data(made.stdout.utf8)) as? [String: String])?["apiKey"])
        let spoofed = try await curl([
            "\(untrusting.plainURL)/v1/contacts", "--header", "Authorization: Bearer \(otherKey)", "--header", "X-Forwarded-Proto: https",
        ])
        #expect(spoofed.status == 403)
        #expect(try await untrusting.stop() == 0)
        await other.remove()
    }

    private func scanWithSSLyze(_ sslyze: String, server: ServerProcess) async throws {
        let report = server.dataDirectory.appendingPathComponent("sslyze.json")
        let scan = try await run(sslyze, [
            "--json_out=\(report.path)", "--certinfo", "--certinfo_ca_file=\(server.caFile)", "--sslv2", "--sslv3", "--tlsv1",
            "--tlsv1_1", "--tlsv1_2", "--tlsv1_3", "--compression", "--reneg", "--http_headers", "localhost:\(server.port)",
        ])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any], "\(scan.stderr)")
        let result = try #require(((json["server_scan_results"] as? [[String: Any]])?.first)?["scan_result"] as? [String: Any])
        func accepted(_ plugin: String) -> [String] {
            let suites = ((result[plugin] as? [String: Any])?["result"] as? [String: Any])?["accepted_cipher_suites"] as? [[String: Any]]
            return (suites ?? []).compactMap { ($0["cipher_suite"] as? [String: Any])?["name"] as? String }
        }
        for old in ["ssl_2_0_cipher_suites", "ssl_3_0_cipher_suites", "tls_1_0_cipher_suites", "tls_1_1_cipher_suites"] {
            #expect(accepted(old).isEmpty, "\(old): \(accepted(old))")
        }
        let tls12 = accepted("tls_1_2_cipher_suites")
        #expect(!tls12.isEmpty)
        #expect(tls12.allSatisfy { $0.contains("_ECDHE_") && ($0.contains("_GCM_") || $0.contains("CHACHA20_POLY1305")) }, "\(tls12)")
        #expect(!accepted("tls_1_3_cipher_suites").isEmpty, "TLS 1.3 is offered")
        func plugin(_ name: String) -> [String: Any] { ((result[name] as? [String: Any])?["result"] as? [String: Any]) ?? [:] }
        #expect(plugin("tls_compression")["supports_compression"] as? Bool == false)
        #expect(plugin("session_renegotiation")["is_vulnerable_to_client_renegotiation_dos"] as? Bool == false)
        #expect(plugin("session_renegotiation")["client_renegotiations_success_count"] as? Int == 0)
        let deployments = plugin("certinfo")["certificate_deployments"] as? [[String: Any]]
            ?? plugin("certificate_info")["certificate_deployments"] as? [[String: Any]] ?? []
        let validations = (deployments.first?["path_validation_results"] as? [[String: Any]]) ?? []
        let supplied = validations.first { (($0["trust_store"] as? [String: Any])?["name"] as? String)?.contains("Supplied") == true }
        #expect(supplied?["was_validation_successful"] as? Bool == true, "the chain is valid for the local CA")
        let hsts = plugin("http_headers")["strict_transport_security_header"] as? [String: Any]
        #expect(hsts?["max_age"] as? Int == 63_072_000, "\(plugin("http_headers"))")
    }

    private func scanWithTestSSL(_ testssl: String, server: ServerProcess) async throws {
        let report = server.dataDirectory.appendingPathComponent("testssl.json")
        // testssl.sh stops slow probes with SIGTERM, which its children must not have blocked.
        let scan = try await runWithDefaultSignals(testssl, [
            "--quiet", "--color", "0", "--warnings", "batch", "--protocols", "--cipher-per-proto", "--server-defaults", "--headers",
            "--add-ca", server.caFile, "--jsonfile", report.path, "https://localhost:\(server.port)",
        ])
        let findings = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [[String: Any]], "\(scan.stdout.suffix(2000))"
        )
        func finding(_ id: String) -> String { findings.first { $0["id"] as? String == id }?["finding"] as? String ?? "missing" }
        for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
            #expect(finding(old) == "not offered", "\(old): \(finding(old))")
        }
        #expect(finding("TLS1_2") == "offered")
        #expect(finding("TLS1_3").hasPrefix("offered"))
        let tls12 = findings.filter { ($0["id"] as? String)?.hasPrefix("cipher-tls1_2_") == true }.compactMap { $0["finding"] as? String }
        #expect(!tls12.isEmpty)
        #expect(tls12.allSatisfy { $0.contains("ECDHE-") && ($0.contains("GCM") || $0.contains("CHACHA20")) }, "\(tls12)")
        #expect(finding("cert_chain_of_trust").hasPrefix("passed"), "\(finding("cert_chain_of_trust"))")
        #expect(finding("HSTS_time").contains("63072000"))
        #expect(finding("X-Content-Type-Options") == "nosniff")
    }
}

/// Runs a program as `run` does, but with no signal blocked or ignored: threads of the test
/// process block most signals, and a child inherits that mask through exec.
func runWithDefaultSignals(_ executable: String, _ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
    let python = ProcessInfo.processInfo.environment["TIDINGS_PYTHON"] ?? "/usr/bin/python3"
    let trampoline = """
        import os, signal, sys
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        for number in (signal.SIGPIPE, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
            signal.signal(number, signal.SIG_DFL)
        os.execv(sys.argv[1], sys.argv[1:])
        """
    return try await run(python, ["-c", trampoline, executable] + arguments)
}
