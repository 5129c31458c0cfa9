import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TidingsDomain

/// Server-rendered pages: escaped by default, no scripts, no external resources, and
/// headers that keep them from being framed, cached or leaking links.
enum HTML {
    /// Escapes text for element content and attribute values.
    static func escape(_ text: String) -> String {
        HTMLEscaping.escape(text)
    }

    static let securityHeaders: HTTPFields = [
        .contentSecurityPolicy: "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        .init("X-Content-Type-Options")!: "nosniff",
        .init("Referrer-Policy")!: "no-referrer",
        .cacheControl: "no-store",
        .init("X-Frame-Options")!: "DENY",
    ]

    /// A whole page. `body` is already HTML; everything interpolated into it must be escaped.
    static func page(_ title: String, status: HTTPResponse.Status = .ok, cookies: [String] = [], _ body: String) -> Response {
        let html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
            <title>\(escape(title)) · Tidings</title></head>
            <body><header><strong>Tidings</strong></header><main><h1>\(escape(title))</h1>
            \(body)
            </main></body></html>
            """
        var headers = securityHeaders
        headers[.contentType] = "text/html; charset=utf-8"
        for cookie in cookies { headers.append(HTTPField(name: .setCookie, value: cookie)) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    static func redirect(_ location: String, cookies: [String] = []) -> Response {
        var headers = securityHeaders
        headers[.location] = location
        for cookie in cookies { headers.append(HTTPField(name: .setCookie, value: cookie)) }
        return Response(status: .seeOther, headers: headers)
    }

    static func form(action: String, csrf: String, submit: String, _ fields: String = "") -> String {
        """
        <form method="post" action="\(escape(action))">
        <input type="hidden" name="_csrf" value="\(escape(csrf))">
        \(fields)
        <button type="submit">\(escape(submit))</button>
        </form>
        """
    }

    static func notice(_ text: String) -> String { "<p role=\"alert\">\(escape(text))</p>" }
}

/// A submitted `application/x-www-form-urlencoded` form.
struct FormBody {
    let fields: [String: String]

    static let maxBytes = 64 * 1024

    static func read(_ request: Request) async throws -> FormBody {
        guard let type = request.headers[.contentType]?.lowercased(), type.hasPrefix("application/x-www-form-urlencoded") else {
            throw WebError(.unsupportedMediaType, "Forms must be sent as application/x-www-form-urlencoded.")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: maxBytes)
        } catch {
            throw WebError(.contentTooLarge, "The form is larger than \(maxBytes) bytes.")
        }
        return FormBody(fields: parse(String(buffer: buffer)))
    }

    static func parse(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) -> String {
                String(part).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            let name = decode(parts[0])
            guard !name.isEmpty, fields[name] == nil else { continue }
            fields[name] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
    }

    subscript(_ name: String) -> String? { fields[name] }

    func required(_ name: String, label: String) throws -> String {
        guard let value = fields[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty else {
            throw WebError(.badRequest, "\(label) is required.")
        }
        guard !value.utf8.contains(0) else { throw WebError(.badRequest, "\(label) must not contain the NUL character.") }
        return value
    }
}

/// A problem shown to the person as a page.
struct WebError: Error {
    var status: HTTPResponse.Status
    var message: String

    init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }
}
