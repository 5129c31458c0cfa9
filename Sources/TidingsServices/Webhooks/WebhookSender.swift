import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Sends one webhook request: a POST to the endpoint's URL, connected to the address the
/// target check judged (the URL's host still names the server for TLS and `Host`), with no
/// redirect followed and one time limit for the whole exchange. It keeps the status and the
/// first bytes of the answer.
struct WebhookSender: Sendable {
    let timeout: Duration
    let tls: TLSConfiguration
    let snippetBytes: Int

    /// Extra trust roots are read when a connection first needs them.
    init(settings: WebhookSettings) {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.additionalTrustRoots = settings.trustRoots.map { .file($0) }
        self.tls = tls
        self.timeout = settings.timeout
        self.snippetBytes = settings.snippetBytes
    }

    enum Result: Sendable, Equatable {
        /// The endpoint answered (any status); `snippet` is the start of its body.
        case answered(status: Int, snippet: String)
        /// No answer: why, in words for the delivery log.
        case failed(String)
    }

    /// - Parameters:
    ///   - host: the URL's host, as the target check read it.
    ///   - address: the address to connect to instead of looking the host up again; `nil` when
    ///     the host is an address.
    func send(url: String, host: String, address: String?, headers: [(String, String)], body: [UInt8]) async -> Result {
        let limit = TimeAmount.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
        var configuration = HTTPClient.Configuration(
            tlsConfiguration: tls,
            // A signed request goes to the endpoint and nowhere else; a 3xx is a failed attempt.
            redirectConfiguration: .disallow,
            timeout: .init(connect: limit, read: limit)
        )
        // A refused connection fails the attempt at once (the schedule retries it later).
        configuration.connectionPool.retryConnectionEstablishment = false
        if let address { configuration.dnsOverride = [host: address] }
        // One client per request: the connection goes to the address judged for this attempt only.
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let result = await exchange(client, url: url, headers: headers, body: body, limit: limit)
        try? await client.shutdown()
        return result
    }

    private func exchange(_ client: HTTPClient, url: String, headers: [(String, String)], body: [UInt8], limit: TimeAmount) async -> Result {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: limit)
        } catch {
            return .failed(Self.describe(error, timeout: timeout))
        }
        var collected: [UInt8] = []
        do {
            for try await chunk in response.body {
                collected += chunk.readableBytesView.prefix(snippetBytes - collected.count)
                if collected.count >= snippetBytes { break }
            }
        } catch {
            // The status decides the attempt; a body cut short only shortens the snippet.
        }
        return .answered(status: Int(response.status.code), snippet: String(decoding: collected, as: UTF8.self))
    }

    /// A short reason for the delivery log: what went wrong, never the URL (it may hold a token).
    static func describe(_ error: any Error, timeout: Duration) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .connectTimeout, .writeTimeout:
                return "No answer within \(timeout.components.seconds) s."
            case .remoteConnectionClosed:
                return "The endpoint closed the connection without answering."
            default:
                return "The request failed: \(String(describing: error).prefix(200))."
            }
        }
        if let error = error as? NIOSSLError {
            return "The TLS handshake failed: \(String(describing: error).prefix(200))."
        }
        if let error = error as? BoringSSLError {
            return "The TLS handshake failed: \(String(describing: error).prefix(200))."
        }
        if let error = error as? IOError {
            return "The connection failed: \(error.description.prefix(200))."
        }
        if let error = error as? NIOConnectionError {
            let reasons = error.connectionErrors.map { "\($0.error)" }
            return "The connection failed: \((reasons.first ?? "no address to connect to").prefix(200))."
        }
        return "The request failed: \(String(describing: error).prefix(200))."
    }
}
