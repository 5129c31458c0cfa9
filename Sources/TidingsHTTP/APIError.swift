import Foundation
import Hummingbird
import TidingsDomain

/// The one error shape of the API: `{"error": {"code", "message", "field"?, "requestId"}}`.
public struct APIError: Error, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var field: String?
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, code: String, message: String, field: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
    }

    init(_ error: DomainError) {
        let status: HTTPResponse.Status = switch error.kind {
        case .invalid: .unprocessableContent
        case .malformed: .badRequest
        case .notFound: .notFound
        case .conflict: .conflict
        case .tooLarge: .contentTooLarge
        case .unauthenticated: .unauthorized
        case .forbidden: .forbidden
        }
        self.init(status, code: error.code, message: error.message, field: error.field)
        if error.kind == .unauthenticated {
            headers[.wwwAuthenticate] = "Bearer"
        }
    }

    static let notFound = APIError(.notFound, code: "not_found", message: "No such resource.")

    func response(requestId: String) -> Response {
        struct Body: Encodable {
            struct Detail: Encodable {
                var code: String
                var message: String
                var field: String?
                var requestId: String
            }
            var error: Detail
        }
        let body = Body(error: .init(code: code, message: message, field: field, requestId: requestId))
        var response = JSONResponse.make(status: status, body)
        response.headers.append(contentsOf: headers)
        return response
    }
}

/// JSON responses with the encoder settings used everywhere in the API.
enum JSONResponse {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// The hot paths answer through this one: hand-written serialisation, no `JSONEncoder`.
    static func make(status: HTTPResponse.Status, json value: JSONValue) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: value.serialized))
        )
    }

    static func make(status: HTTPResponse.Status, _ value: some Encodable) -> Response {
        // Encoding our own DTOs cannot fail; an empty object beats a crash if it ever did.
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }
}
