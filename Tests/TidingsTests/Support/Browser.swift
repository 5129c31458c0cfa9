import Foundation
import HTTPTypes
import Synchronization
import TidingsCrypto

/// A person at a browser: keeps cookies, submits forms with their anti-forgery token,
/// and reads what pages show. Pages are plain HTML, so a few patterns find their parts.
final class Browser: Sendable {
    let client: TestClient
    private let jar = Mutex<[String: String]>([:])
    /// The network the requests appear to come from (tests of per-network throttling).
    let headers: HTTPFields

    init(_ client: TestClient, headers: HTTPFields = [:]) {
        self.client = client
        self.headers = headers
    }

    var cookies: [String: String] { jar.withLock { $0 } }

    func get(_ path: String) async throws -> TestClient.Reply {
        try await send(.get, path, body: nil)
    }

    /// Submits a form; the `_csrf` field is taken from `page` unless `csrf` says otherwise.
    func post(_ path: String, _ fields: [String: String], from page: TestClient.Reply? = nil, csrf: String? = nil) async throws -> TestClient.Reply {
        var fields = fields
        if let token = csrf ?? page.flatMap({ Self.csrf(in: $0.body) }) { fields["_csrf"] = token }
        let body = fields.map { "\(Self.encode($0.key))=\(Self.encode($0.value))" }.joined(separator: "&")
        return try await send(.post, path, body: body)
    }

    private func send(_ method: HTTPRequest.Method, _ path: String, body: String?) async throws -> TestClient.Reply {
        var headers = self.headers
        let cookieHeader = cookies.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: "; ")
        if !cookieHeader.isEmpty { headers[.cookie] = cookieHeader }
        let reply = try await client.request(
            method, path, key: nil, body: body, contentType: body == nil ? nil : "application/x-www-form-urlencoded", headers: headers
        )
        for value in reply.headers[values: .setCookie] {
            let pair = value.split(separator: ";")[0].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(pair[0])
            let content = pair.count > 1 ? String(pair[1]) : ""
            jar.withLock { jar in
                if content.isEmpty || value.contains("Max-Age=0") { jar[name] = nil } else { jar[name] = content }
            }
        }
        return reply
    }

    func forget(_ cookie: String) {
        jar.withLock { $0[cookie] = nil }
    }

    static func csrf(in html: String) -> String? {
        first(#"name="_csrf" value="([^"]+)""#, in: html)
    }

    static func first(_ pattern: String, in text: String) -> String? {
        guard let regex = try? NSRegularExpression(pattern: pattern),
              let match = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)),
              let range = Range(match.range(at: 1), in: text) else { return nil }
        return String(text[range])
    }

    static func all(_ pattern: String, in text: String) -> [String] {
        guard let regex = try? NSRegularExpression(pattern: pattern) else { return [] }
        return regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap { match in
            Range(match.range(at: 1), in: text).map { String(text[$0]) }
        }
    }

    static func encode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    /// The current TOTP code for the key shown on the enrolment page.
    static func code(secret: String, at date: Date) -> String {
        TOTP(base32Secret: secret)!.code(at: date)!
    }
}

extension TestClient.Reply {
    var location: String? { headers[.location] }
}
