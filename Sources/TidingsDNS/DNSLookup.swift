/// Asks DNS for the records of one name. `DNSResolver` asks real servers; tests and callers
/// that need a fixed world supply their own.
public protocol DNSLookup: Sendable {
    /// The records of `type` at `name`, CNAMEs followed. An empty list means the name exists
    /// but has no such records (NODATA); a name that does not exist throws `.nameNotFound`.
    func records(_ type: DNSRecordType, at name: DNSName) async throws(DNSLookupError) -> [DNSRecordData]
}

extension DNSLookup {
    /// The TXT records at `name`, each as its strings joined. A name that does not exist has none.
    public func texts(at name: DNSName) async throws(DNSLookupError) -> [String] {
        try await recordsOrNone(.txt, at: name).compactMap(\.text)
    }

    /// Like `records`, but a name that does not exist simply has no records.
    public func recordsOrNone(_ type: DNSRecordType, at name: DNSName) async throws(DNSLookupError) -> [DNSRecordData] {
        do {
            return try await records(type, at: name)
        } catch .nameNotFound {
            return []
        }
    }

    /// The A and AAAA addresses of `name`.
    public func addresses(of name: DNSName) async throws(DNSLookupError) -> [IPAddress] {
        let v4 = try await recordsOrNone(.a, at: name)
        let v6 = try await recordsOrNone(.aaaa, at: name)
        return (v4 + v6).compactMap(\.address)
    }
}

/// Why a lookup has no answer. Only `.nameNotFound` is an answer about the name; the others
/// say the question could not be answered now.
public enum DNSLookupError: Error, Sendable, Equatable, CustomStringConvertible {
    /// NXDOMAIN: the name does not exist.
    case nameNotFound(DNSName)
    /// The server answered with an error code (SERVFAIL, REFUSED, …).
    case serverFailure(server: String, code: DNSResponseCode)
    /// No answer within the time allowed (per try), from every server and attempt.
    case timeout(server: String, after: Duration)
    /// The server could not be reached (connection refused, no route, …).
    case unreachable(server: String, reason: String)
    /// The server's answer could not be read, or answered another question.
    case malformedAnswer(server: String, reason: String)

    public var description: String {
        switch self {
        case .nameNotFound(let name): "\(name) does not exist (NXDOMAIN)"
        case .serverFailure(let server, let code): "the DNS server \(server) answered \(code)"
        case .timeout(let server, let limit): "the DNS server \(server) did not answer within \(Self.seconds(limit)) s"
        case .unreachable(let server, let reason): "the DNS server \(server) cannot be reached: \(reason)"
        case .malformedAnswer(let server, let reason): "the DNS server \(server) sent an unreadable answer: \(reason)"
        }
    }

    static func seconds(_ duration: Duration) -> String {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        return milliseconds % 1000 == 0 ? String(milliseconds / 1000) : String(Double(milliseconds) / 1000)
    }

    /// A short name for logs: no server address, no reason text.
    public var kind: String {
        switch self {
        case .nameNotFound: "nxdomain"
        case .serverFailure(_, let code): code.description.lowercased()
        case .timeout: "timeout"
        case .unreachable: "unreachable"
        case .malformedAnswer: "malformed"
        }
    }
}

extension DNSMessage {
    /// The answer's records of `type` for the question's name, following the CNAME chain
    /// the server included. `next` is the name the chain ends at when the server left its
    /// records out (to be asked for separately); `nil` when the records are all here.
    public func records(_ type: DNSRecordType, for name: DNSName) -> (records: [DNSRecordData], next: DNSName?) {
        var current = name
        var visited: Set<DNSName> = [name]
        while true {
            let found = answers.filter { $0.type == type && $0.name == current }.map(\.data)
            if !found.isEmpty || type == .cname { return (found, nil) }
            guard let alias = answers.first(where: { $0.type == .cname && $0.name == current }), case .cname(let target) = alias.data else {
                return ([], current == name ? nil : current)
            }
            // A chain that comes back to a name it passed is a loop: nothing more to follow.
            guard visited.insert(target).inserted else { return ([], nil) }
            current = target
        }
    }
}
