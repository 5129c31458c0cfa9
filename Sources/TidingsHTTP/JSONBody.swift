import Foundation
import Hummingbird
import NIOCore
import TidingsDomain

/// Reading JSON request bodies: content type, size limit, and the top-level object.
enum JSONBody {
    /// The largest JSON body the API accepts.
    static let maxBytes = 1024 * 1024

    static func object(_ request: Request, maxBytes: Int = maxBytes) async throws -> [String: JSONValue] {
        guard let object = try await optionalObject(request, maxBytes: maxBytes) else {
            throw APIError(.badRequest, code: "empty_body", message: "The request body is empty; send a JSON object.")
        }
        return object
    }

    /// Like `object`, but an empty body (as `curl -X POST` sends) is `nil` rather than an error.
    static func optionalObject(_ request: Request, maxBytes: Int = maxBytes) async throws -> [String: JSONValue]? {
        try requireContentType(request, accepting: ["application/json"], suffix: "+json")
        var body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: maxBytes)
        } catch is NIOTooManyBytesError {
            throw tooLarge(maxBytes)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw tooLarge(maxBytes)
        }
        guard body.readableBytes > 0 else { return nil }
        let value: JSONValue
        do {
            value = try JSONValue.parse(body.readableBytesView)
        } catch {
            throw APIError(
                .badRequest, code: "malformed_json",
                message: "The request body is not valid JSON: \(error.reason) at byte \(error.offset)."
            )
        }
        guard case .object(let object) = value else {
            throw APIError(.badRequest, code: "malformed_json", message: "The request body must be a JSON object, not \(value.typeName).")
        }
        if let path = value.pathOfNULCharacter() {
            throw APIError(
                .unprocessableContent, code: "invalid_character",
                message: "Strings must not contain the NUL character (U+0000).", field: String(path.prefix(100))
            )
        }
        return object
    }

    static func tooLarge(_ maxBytes: Int) -> APIError {
        APIError(.contentTooLarge, code: "body_too_large", message: "The request body exceeds the limit of \(maxBytes) bytes.")
    }

    /// Refuses bodies declared as something else; a missing Content-Type is read as the expected type.
    static func requireContentType(_ request: Request, accepting types: Set<String>, suffix: String? = nil) throws {
        guard let header = request.headers[.contentType] else { return }
        let mediaType = header.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        if types.contains(mediaType) { return }
        if let suffix, mediaType.hasSuffix(suffix) { return }
        throw APIError(
            .unsupportedMediaType, code: "unsupported_media_type",
            message: "Content-Type '\(mediaType.prefix(60))' is not supported here; send \(types.sorted().joined(separator: " or "))."
        )
    }
}

/// Query strings decoded as `application/x-www-form-urlencoded` (keys too, unlike the framework's map).
struct QueryParameters {
    private(set) var items: [(name: String, value: String)] = []

    init(_ query: String?) {
        guard let query, !query.isEmpty else { return }
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            items.append((Self.decode(parts[0]), parts.count > 1 ? Self.decode(parts[1]) : ""))
        }
    }

    static func decode(_ text: Substring) -> String {
        let spaced = text.replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }

    subscript(_ name: String) -> String? {
        items.last(where: { $0.name == name })?.value
    }

    func int(_ name: String) throws -> Int? {
        guard let text = self[name] else { return nil }
        guard let value = Int(text) else {
            throw APIError(.badRequest, code: "invalid_parameter", message: "The query parameter '\(name)' must be an integer.", field: name)
        }
        return value
    }

    /// `prefix[key]=value` pairs (OpenAPI `deepObject` style).
    func deepObject(_ prefix: String) -> [String: String] {
        var result: [String: String] = [:]
        for (name, value) in items where name.hasPrefix(prefix + "[") && name.hasSuffix("]") {
            result[String(name.dropFirst(prefix.count + 1).dropLast())] = value
        }
        return result
    }
}

extension Request {
    /// A path parameter, percent-decoded; `+` stays `+` (paths are not form-encoded).
    func pathParameter(_ name: String, context: TidingsRequestContext) throws -> String {
        guard let raw = context.parameters.get(name) else {
            throw APIError(.badRequest, code: "missing_parameter", message: "The path parameter '\(name)' is missing.")
        }
        return raw.removingPercentEncoding ?? raw
    }
}
