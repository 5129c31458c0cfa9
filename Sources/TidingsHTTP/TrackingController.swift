import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TidingsDomain
import TidingsServices

/// Open and click tracking: the workspace's settings (`/v1/settings/tracking`, scope
/// `admin`), and the public URLs in tracked mail, `/t/o/{token}` (the open pixel) and
/// `/t/c/{token}` (a link), which mail clients and browsers call without a key.
struct TrackingController {
    let services: APIServices

    func register(on routes: APIRoutes) {
        routes.add(.get, "/v1/settings/tracking", getSettings)
        routes.add(.patch, "/v1/settings/tracking", updateSettings)
    }

    /// The public routes, outside authentication. Each request is answered from the token
    /// alone; a token that is not valid is 404, with nothing said about why.
    func registerPublic(on router: Router<TidingsRequestContext>, table: RouteTable) {
        table.add(.get, "/t/o/{token}")
        router.get(APIRoutes.routerPath("/t/o/{token}"), use: pixel)
        table.add(.get, "/t/c/{token}")
        router.get(APIRoutes.routerPath("/t/c/{token}"), use: click)
    }

    @Sendable func getSettings(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        return JSONResponse.make(status: .ok, json: Self.json(try await services.tracking.settings(workspaceId: principal.workspaceId)))
    }

    @Sendable func updateSettings(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let settings = try await services.tracking.updateSettings(
            workspaceId: principal.workspaceId, body: try await JSONBody.object(request), by: context.actor
        )
        return JSONResponse.make(status: .ok, json: Self.json(settings))
    }

    static func json(_ settings: TrackingSettings) -> JSONValue {
        .object([
            "opens": .bool(settings.opens), "clicks": .bool(settings.clicks), "transactional": .bool(settings.transactional),
            "updatedAt": settings.updatedAt.map { .string(Timestamp.format($0)) } ?? .null,
        ])
    }

    // MARK: Public

    static let notFound = APIError(.notFound, code: "not_found", message: "No such tracked message or link.")

    /// A transparent 1×1 GIF.
    static let gif: [UInt8] = [
        0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0x21, 0xF9, 0x04,
        0x01, 0x00, 0x00, 0x00, 0x00, 0x2C, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3B,
    ]

    func client(_ context: TidingsRequestContext) -> TrackingService.Client {
        TrackingService.Client(network: context.clientNetwork, userAgent: context.userAgent)
    }

    @Sendable func pixel(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let token = context.parameters.get("token") ?? ""
        guard try await services.tracking.open(token: token, client: client(context)) else { throw Self.notFound }
        return Response(
            status: .ok,
            headers: [.contentType: "image/gif", .cacheControl: "no-store, max-age=0", .referrerPolicy: "no-referrer"],
            body: .init(byteBuffer: ByteBuffer(bytes: Self.gif))
        )
    }

    @Sendable func click(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let token = context.parameters.get("token") ?? ""
        guard let url = try await services.tracking.click(token: token, client: client(context)) else { throw Self.notFound }
        return Response(status: .found, headers: [.location: url, .cacheControl: "no-store", .referrerPolicy: "no-referrer"])
    }
}

extension HTTPField.Name {
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
}
