import Foundation
import Testing
import TidingsDNS

/// What a test's DNS server answers: TXT, A/AAAA, MX and CNAME records, for names under
/// `.test` (and any other zones listed). Other names under those zones are NXDOMAIN; names
/// outside them are REFUSED.
struct DNSZone: Sendable {
    var zones: [String] = ["test"]
    var txt: [(name: String, value: String)] = []
    var hosts: [(name: String, addresses: [String])] = []
    var mx: [(domain: String, exchange: String, preference: Int)] = []
    var cnames: [(alias: String, target: String)] = []

    mutating func txt(_ name: String, _ value: String) {
        txt.append((name, value))
    }

    mutating func host(_ name: String, _ addresses: String...) {
        hosts.append((name, addresses))
    }

    /// dnsmasq's configuration lines. A TXT value longer than 255 bytes is published as
    /// several character-strings of one record, as DNS providers do.
    var configuration: String {
        var lines = zones.map { "local=/\($0)/" }
        for (name, value) in txt {
            let bytes = Array(value.utf8)
            let chunks = stride(from: 0, to: max(bytes.count, 1), by: 255).map { String(decoding: bytes[$0..<min($0 + 255, bytes.count)], as: UTF8.self) }
            lines.append("txt-record=\(name)," + chunks.map { "\"\($0)\"" }.joined(separator: ","))
        }
        for (name, addresses) in hosts { lines.append("host-record=\(name),\(addresses.joined(separator: ","))") }
        for (domain, exchange, preference) in mx { lines.append("mx-host=\(domain),\(exchange),\(preference)") }
        for (alias, target) in cnames { lines.append("cname=\(alias),\(target)") }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// A real DNS server for a test: dnsmasq (Debian's dnsmasq-base; `TIDINGS_DNSMASQ`, set by
/// scripts/test) on 127.0.0.1 and a port chosen before it starts, so Tidings can be
/// configured with it first and the records published once a test knows them (its DKIM
/// keys are made when its domain is added). `serve` (re)starts it with a zone.
final class DNSServer: @unchecked Sendable {
    // @unchecked: `process` is only touched by the test that owns this server.
    let port: Int
    let directory: URL
    private var process: ChildProcess?

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    var address: String { "127.0.0.1:\(port)" }

    static var binary: String {
        get throws {
            let path = ProcessInfo.processInfo.environment["TIDINGS_DNSMASQ"] ?? "/usr/sbin/dnsmasq"
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw Failure(description: "dnsmasq is missing at \(path): run scripts/test, which installs Debian's dnsmasq-base.")
            }
            return path
        }
    }

    init() throws {
        port = try Self.freePort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-dns-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    /// Runs `body` with a server (not yet serving), and stops it after.
    static func with<T: Sendable>(_ body: (DNSServer) async throws -> T) async throws -> T {
        let server = try DNSServer()
        let result: Result<T, any Error>
        do {
            result = .success(try await body(server))
        } catch {
            result = .failure(error)
        }
        await server.stop()
        return try result.get()
    }

    private var logPath: String { directory.appendingPathComponent("dnsmasq.log").path }

    /// Starts dnsmasq answering from `zone`, replacing what it answered before.
    func serve(_ zone: DNSZone) async throws {
        await stopProcess()
        let configuration = directory.appendingPathComponent("dnsmasq.conf")
        try zone.configuration.write(to: configuration, atomically: true, encoding: .utf8)
        // A port freed a moment ago may still be held briefly; a few tries cover it.
        for _ in 0..<20 {
            FileManager.default.createFile(atPath: logPath, contents: nil)
            let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
            defer { try? log.close() }
            let process = try ChildProcess(try Self.binary, [
                "--no-daemon", "--conf-file=\(configuration.path)", "--no-resolv", "--no-hosts", "--no-poll", "--bind-interfaces",
                "--listen-address=127.0.0.1", "--port=\(port)", "--cache-size=0",
            ], output: log.fileDescriptor, error: log.fileDescriptor)
            self.process = process
            // Generous: the suite runs hundreds of tests at once on a small machine.
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline, process.isRunning {
                if output.contains("started, version"), answers() { return }
                try await Task.sleep(for: .milliseconds(20))
            }
            await stopProcess()
            guard output.contains("Address already in use") else { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw Failure(description: "dnsmasq did not start on 127.0.0.1:\(port):\n\(output)")
    }

    /// Whether the server answers a query (any answer, even a refusal) within 0.2 s.
    private func answers() -> Bool {
        let query = DNSMessage.query(id: 0x7E57, name: .root, type: .txt)
        return (try? udpExchange(query.encoded(), port: port, timeout: 0.2)) != nil
    }

    /// What dnsmasq printed (startup lines; it logs no queries).
    var output: String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    private func stopProcess() async {
        guard let process else { return }
        process.send(SIGKILL)
        await process.waitForExit()
        self.process = nil
    }

    func stop() async {
        await stopProcess()
        try? FileManager.default.removeItem(at: directory)
    }

    /// A loopback port free for UDP and TCP, below the kernel's range of ephemeral ports: the
    /// port is chosen before dnsmasq starts (and again after each restart), and a port from
    /// that range could meanwhile become the local end of some outgoing connection.
    static func freePort() throws -> Int {
        let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))?
            .split(whereSeparator: \.isWhitespace).compactMap { Int($0) } ?? []
        let ephemeralStart = range.first ?? 32768
        let candidates = 10_000..<max(10_001, min(ephemeralStart, 65536))
        for _ in 0..<200 {
            let port = Int.random(in: candidates)
            if (try? boundPort(type: Int32(SOCK_DGRAM.rawValue), port: port)) != nil,
               (try? boundPort(type: Int32(SOCK_STREAM.rawValue), port: port)) != nil {
                return port
            }
        }
        throw Failure(description: "no free loopback port for dnsmasq")
    }

    /// Binds a socket of `type` to 127.0.0.1:`port` (0: any), closes it, and returns the port.
    private static func boundPort(type: Int32, port: Int) throws -> Int {
        let socket = Glibc.socket(AF_INET, type, 0)
        guard socket >= 0 else { throw Failure(description: "socket() failed: \(errno)") }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw Failure(description: "bind() failed: \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// A UDP socket on loopback that receives and never answers: a DNS server that has hung.
final class SilentUDPServer: Sendable {
    let socket: Int32
    let port: Int

    init() throws {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard socket >= 0, bound == 0 else { throw DNSServer.Failure(description: "could not bind a UDP socket") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        self.socket = socket
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit {
        close(socket)
    }
}

/// checkdmarc's verdict on domains, asked through `server` (scripts/peers/checkdmarc_probe.py).
func checkdmarc(_ domains: [String], server: DNSServer) async throws -> [String: [String: [String: Any]]] {
    let script = ProcessInfo.processInfo.environment["TIDINGS_CHECKDMARC"]
        ?? SMTPPeer.repositoryRoot.appendingPathComponent("scripts/peers/checkdmarc_probe.py").path
    let result = try await run(SMTPPeer.python, [script, "--port", String(server.port)] + domains)
    guard result.status == 0 else {
        throw DNSServer.Failure(description: "checkdmarc failed (scripts/test installs it from scripts/requirements-test.txt): \(result.stderr.suffix(2000))")
    }
    guard let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: [String: [String: Any]]] else {
        throw DNSServer.Failure(description: "checkdmarc printed no report: \(result.stdout.prefix(500))")
    }
    return report
}

/// Sends one datagram to 127.0.0.1:`port` and returns the reply, waiting `timeout` seconds at most.
func udpExchange(_ bytes: [UInt8], port: Int, timeout: Double = 2) throws -> [UInt8] {
    let socket = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    guard socket >= 0 else { throw DNSServer.Failure(description: "socket() failed") }
    defer { close(socket) }
    var limit = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
    setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let sent = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(socket, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard sent == bytes.count else { throw DNSServer.Failure(description: "sendto() failed") }
    var reply = [UInt8](repeating: 0, count: 65535)
    let received = recv(socket, &reply, reply.count, 0)
    guard received > 0 else { throw DNSServer.Failure(description: "no UDP reply from 127.0.0.1:\(port)") }
    return Array(reply.prefix(received))
}
