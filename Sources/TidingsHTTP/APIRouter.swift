import Foundation
import Hummingbird
import TidingsDomain

/// Registers authenticated API routes and records them in the route table.
struct APIRoutes {
    let group: RouterGroup<TidingsRequestContext>
    let table: RouteTable

    /// `path` uses OpenAPI's `{name}` parameters, so it reads exactly as in the document.
    func add(
        _ method: HTTPRequest.Method, _ path: String,
        _ handler: @escaping @Sendable (Request, TidingsRequestContext) async throws -> Response
    ) {
        table.add(method, path)
        group.on(Self.routerPath(path), method: method, use: handler)
    }

    /// `/v1/contacts/{email}` in the router's own syntax, `/v1/contacts/:email`.
    static func routerPath(_ path: String) -> RouterPath {
        RouterPath("/" + path.split(separator: "/").map { segment in
            segment.hasPrefix("{") ? ":" + segment.dropFirst().dropLast() : String(segment)
        }.joined(separator: "/"))
    }
}

/// Builds the HTTP router: system routes without authentication, everything else behind an API key.
public func buildRouter(
    services: APIServices, transport: TransportSecurity = TransportSecurity(listener: .https)
) throws -> Router<TidingsRequestContext> {
    let table = RouteTable()
    let router = Router(context: TidingsRequestContext.self)
    // Middleware is attached to routes as they are added, so it must come first.
    router.add(middleware: RequestMiddleware(routes: table, transport: transport))
    router.add(middleware: PlainHTTPGate(transport: transport))

    let openAPI = try OpenAPIDocument.load()
    table.add(.get, "/healthz")
    router.get("/healthz") { _, _ in
        JSONResponse.make(status: .ok, ["status": "ok"])
    }
    table.add(.get, "/readyz")
    router.get("/readyz") { _, _ in
        let ready = await services.isReady()
        return JSONResponse.make(status: ready ? .ok : .serviceUnavailable, ["status": ready ? "ready" : "not ready"])
    }
    table.add(.get, "/v1/openapi.json")
    router.get("/v1/openapi.json") { _, _ in
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: openAPI))
    }

    let authenticated = router.group().add(middleware: AuthenticationMiddleware { bearer in
        try await services.apiKeys.authenticate(bearer: bearer)
    })
    let routes = APIRoutes(group: authenticated, table: table)
    ContactsController(services: services).register(on: routes)
    EventsController(services: services).register(on: routes)
    APIKeysController(services: services).register(on: routes)
    TemplatesController(services: services).register(on: routes)
    DomainsController(services: services).register(on: routes)
    EmailServersController(services: services).register(on: routes)
    MessagesController(services: services).register(on: routes)
    SegmentsController(services: services).register(on: routes)
    AnnouncementsController(services: services).register(on: routes)
    AuditController(services: services).register(on: routes)
    TopicsController(services: services).register(on: routes)
    SubscriptionsController(services: services).register(on: routes)
    AutomationsController(services: services).register(on: routes)
    WebhooksController(services: services).register(on: routes)
    TrackingController(services: services).register(on: routes)
    StatsController(services: services).register(on: routes)
    TrackingController(services: services).registerPublic(on: router, table: table)
    WebController(services: services).register(on: router, table: table)
    PreferencePagesController(services: services).register(on: router, table: table)
    return router
}

/// The OpenAPI 3.1 document, shipped as a resource and served as is.
public enum OpenAPIDocument {
    public static func data() throws -> Data {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json") else {
            throw CocoaError(.fileNoSuchFile)
        }
        return try Data(contentsOf: url)
    }

    static func load() throws -> ByteBuffer {
        ByteBuffer(bytes: try data())
    }
}
