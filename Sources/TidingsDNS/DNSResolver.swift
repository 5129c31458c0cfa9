import NIOCore
import NIOPosix

/// Asks DNS servers over UDP, and again over TCP when an answer comes back truncated
/// (RFC 1035 §4.2, RFC 7766). The servers are tried in order; each gets `attempts` tries
/// of `timeout` each before the next is asked.
public struct DNSResolver: DNSLookup {
    public var servers: [DNSServerAddress]
    public var timeout: Duration
    public var attempts: Int
    let group: any EventLoopGroup

    public init(
        servers: [DNSServerAddress], timeout: Duration = .seconds(5), attempts: Int = 2,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        precondition(!servers.isEmpty, "a resolver needs a server")
        self.servers = servers
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.group = group
    }

    /// The longest CNAME chain followed across queries.
    static let maxAliasQueries = 8

    public func records(_ type: DNSRecordType, at name: DNSName) async throws(DNSLookupError) -> [DNSRecordData] {
        var current = name
        for _ in 0...Self.maxAliasQueries {
            let answer = try await query(current, type)
            let (records, next) = answer.records(type, for: current)
            guard let next else { return records }
            current = next
        }
        return []
    }

    /// The server's answer to one question: NOERROR, or NXDOMAIN as `.nameNotFound`. Other
    /// codes, timeouts and unreachable servers move on to the next try.
    public func query(_ name: DNSName, _ type: DNSRecordType) async throws(DNSLookupError) -> DNSMessage {
        var lastError: DNSLookupError?
        for _ in 0..<attempts {
            for server in servers {
                do {
                    let answer = try await exchange(with: server, name: name, type: type)
                    switch answer.header.responseCode {
                    case .noError:
                        return answer
                    case .nameError:
                        throw DNSLookupError.nameNotFound(name)
                    default:
                        lastError = .serverFailure(server: server.description, code: answer.header.responseCode)
                    }
                } catch let error as DNSLookupError {
                    if case .nameNotFound = error { throw error }
                    lastError = error
                } catch {
                    lastError = .unreachable(server: server.description, reason: Self.reason(error))
                }
            }
        }
        throw lastError ?? .timeout(server: servers[0].description, after: timeout)
    }

    /// One question to one server: UDP first, TCP when the UDP answer is truncated.
    func exchange(with server: DNSServerAddress, name: DNSName, type: DNSRecordType) async throws -> DNSMessage {
        let address = try Self.socketAddress(server)
        let query = DNSMessage.query(id: UInt16.random(in: 0...UInt16.max), name: name, type: type)
        let answer = try await withDeadline(server) { try await udp(query, to: address, server: server) }
        guard answer.header.isTruncated else { return answer }
        return try await withDeadline(server) { try await tcp(query, to: address, server: server) }
    }

    private func udp(_ query: DNSMessage, to address: SocketAddress, server: DNSServerAddress) async throws -> DNSMessage {
        let channel = try await DatagramBootstrap(group: group).connect(to: address) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>(wrappingChannelSynchronously: channel)
            }
        }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(AddressedEnvelope(remoteAddress: address, data: ByteBuffer(bytes: query.encoded())))
            for try await envelope in inbound {
                // The socket is connected, so only the server's datagrams arrive; one that is not
                // the answer to this query (a late answer to an earlier one) is skipped.
                guard let answer = try? DNSMessage(decoding: Array(envelope.data.readableBytesView)),
                      Self.answers(answer, query) else { continue }
                return answer
            }
            throw DNSLookupError.unreachable(server: server.description, reason: "the connection closed without an answer")
        }
    }

    private func tcp(_ query: DNSMessage, to address: SocketAddress, server: DNSServerAddress) async throws -> DNSMessage {
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000))
            .connect(to: address) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            let bytes = query.encoded()
            // RFC 1035 §4.2.2: each message is preceded by its length in two bytes.
            try await outbound.write(ByteBuffer(bytes: [UInt8(bytes.count >> 8), UInt8(bytes.count & 0xFF)] + bytes))
            var received: [UInt8] = []
            for try await chunk in inbound {
                received += chunk.readableBytesView
                guard received.count >= 2 else { continue }
                let length = Int(received[0]) << 8 | Int(received[1])
                guard received.count >= 2 + length else { continue }
                let answer: DNSMessage
                do {
                    answer = try DNSMessage(decoding: Array(received[2..<(2 + length)]))
                } catch {
                    throw DNSLookupError.malformedAnswer(server: server.description, reason: "\(error)")
                }
                guard Self.answers(answer, query) else {
                    throw DNSLookupError.malformedAnswer(server: server.description, reason: "the answer is for another question")
                }
                return answer
            }
            throw DNSLookupError.unreachable(server: server.description, reason: "the connection closed before the whole answer arrived")
        }
    }

    /// Whether `answer` is the response to `query`: same id, a response, the same question.
    static func answers(_ answer: DNSMessage, _ query: DNSMessage) -> Bool {
        answer.id == query.id && answer.header.isResponse && answer.questions.count == 1
            && answer.questions[0].name == query.questions[0].name && answer.questions[0].type == query.questions[0].type
    }

    /// Runs `body`, or throws `.timeout` once `timeout` has passed.
    private func withDeadline<T: Sendable>(_ server: DNSServerAddress, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await body() }
            group.addTask { [timeout] in
                try await Task.sleep(for: timeout)
                throw DNSLookupError.timeout(server: server.description, after: timeout)
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    /// IP addresses are used as they are; a host name is looked up by the system once per exchange.
    static func socketAddress(_ server: DNSServerAddress) throws -> SocketAddress {
        if IPAddress(server.host) != nil {
            return try SocketAddress(ipAddress: server.host, port: server.port)
        }
        return try SocketAddress.makeAddressResolvingHost(server.host, port: server.port)
    }

    static func reason(_ error: any Error) -> String {
        if let error = error as? IOError { return error.description }
        if let error = error as? ChannelError { return "\(error)" }
        return String(describing: error)
    }
}
