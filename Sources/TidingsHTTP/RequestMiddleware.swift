import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// The outermost layer of every request: request id, the client behind trusted proxies, one
/// access-log line, errors as JSON, and HSTS on whatever arrived over TLS.
///
/// The access log names the route template (`/v1/contacts/{email}`), never the
/// requested path, so addresses in paths never reach a log.
struct RequestMiddleware: RouterMiddleware {
    typealias Context = TidingsRequestContext
    let routes: RouteTable
    let transport: TransportSecurity

    static let requestIdHeader = HTTPField.Name("X-Request-Id")!

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.requestId = Self.requestId(from: request)
        context.userAgent = request.headers[.userAgent]
        if transport.isTrusted(context.peerAddress) {
            context.clientNetwork = transport.clientAddress(peer: context.peerAddress, headers: request.headers)
                .flatMap(IPAddressTruncation.truncate)
        }
        context.logger[metadataKey: "request_id"] = .string(context.requestId)
        context.logger[metadataKey: "hb.request.id"] = nil
        let started = ContinuousClock.now
        var response: Response
        do {
            // No identifier, address or filter value may hold NUL: nothing could store or match it.
            if request.uri.description.range(of: "%00") != nil {
                throw APIError(.badRequest, code: "invalid_character", message: "The URL must not contain the NUL character (%00).")
            }
            response = try await next(request, context)
        } catch {
            response = errorResponse(error, request: request, context: context)
        }
        response.headers[Self.requestIdHeader] = context.requestId
        if transport.arrivedOverTLS(peer: context.peerAddress, headers: request.headers) {
            response.headers[TransportSecurity.hstsHeader] = TransportSecurity.strictTransportSecurity
        }
        let elapsed = ContinuousClock.now - started
        context.logger.info("Request", metadata: [
            "method": .string(request.method.rawValue),
            "route": .string(context.endpointPath ?? "unmatched"),
            "client": .string(context.clientNetwork ?? "unknown"),
            "status": .stringConvertible(response.status.code),
            "duration_us": .stringConvertible(elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000),
        ])
        return response
    }

    private func errorResponse(_ error: any Error, request: Request, context: Context) -> Response {
        switch error {
        case let error as APIError:
            return error.response(requestId: context.requestId)
        case let error as DomainError:
            return APIError(error).response(requestId: context.requestId)
        case let error as HTTPError where error.status == .notFound && context.endpointPath == "NotFound":
            let methods = routes.methods(matching: request.uri.path)
            guard !methods.isEmpty else {
                return APIError(.notFound, code: "route_not_found", message: "No route matches \(request.method.rawValue) on this path.")
                    .response(requestId: context.requestId)
            }
            var notAllowed = APIError(
                .methodNotAllowed, code: "method_not_allowed",
                message: "\(request.method.rawValue) is not allowed here; allowed: \(methods.map(\.rawValue).joined(separator: ", "))."
            )
            notAllowed.headers[.allow] = methods.map(\.rawValue).joined(separator: ", ")
            return notAllowed.response(requestId: context.requestId)
        case is WorkspaceKeysDestroyed:
            // Only a database restored from before the workspace's deletion still lists it.
            return APIError(.gone, code: "workspace_deleted", message: "This workspace was deleted and its data destroyed.")
                .response(requestId: context.requestId)
        case let error as HTTPError where error.status == .contentTooLarge:
            return JSONBody.tooLarge(JSONBody.maxBytes).response(requestId: context.requestId)
        case is NIOTooManyBytesError:
            return JSONBody.tooLarge(JSONBody.maxBytes).response(requestId: context.requestId)
        case let error as HTTPError where (400..<500).contains(error.status.code):
            return APIError(error.status, code: "bad_request", message: error.status.reasonPhrase)
                .response(requestId: context.requestId)
        default:
            // Our fault: log the type and description (never request data) and point the caller at the id.
            context.logger.error("Unhandled error", metadata: [
                "error_type": .string(String(reflecting: type(of: error))),
                "error": .string(String(describing: error)),
            ])
            return APIError(
                .internalServerError, code: "internal_error",
                message: "Something went wrong on our side; quote request id \(context.requestId) when reporting it."
            ).response(requestId: context.requestId)
        }
    }

    private static func isPlainIdByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "-"), UInt8(ascii: "_"):
            true
        default:
            false
        }
    }

    /// Accepts a caller's id if it is short and plain, so ids can be followed across systems.
    static func requestId(from request: Request) -> String {
        if let given = request.headers[requestIdHeader], (1...64).contains(given.utf8.count),
           given.utf8.allSatisfy(isPlainIdByte) {
            return given
        }
        var generator = SystemRandomNumberGenerator()
        let value = (generator.next() as UInt64, generator.next() as UInt32)
        return "req_" + String(value.0, radix: 36) + String(value.1, radix: 36)
    }
}

/// Authenticates `Authorization: Bearer <key>` and stores the caller in the context.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = TidingsRequestContext
    let authenticate: @Sendable (String) async throws -> Principal

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization] else {
            throw DomainError(.unauthenticated, code: "missing_api_key", message: "Send an API key as 'Authorization: Bearer <key>'.")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw DomainError(.unauthenticated, code: "invalid_authorization", message: "The Authorization header must be 'Bearer <key>'.")
        }
        var context = context
        // A key is recognised among all workspaces' keys; what it then does is fenced to its own.
        let principal = try await TenantScope.with(.instance) {
            try await authenticate(parts[1].trimmingCharacters(in: .whitespaces))
        }
        context.principal = principal
        context.logger[metadataKey: "workspace"] = .string(principal.workspaceId)
        context.logger[metadataKey: "api_key"] = .string(principal.apiKeyId)
        return try await TenantScope.$current.withValue(.workspace(principal.workspaceId)) {
            try await next(request, context)
        }
    }
}
