import Hummingbird
import TidingsDomain

/// `/v1/events`: what contacts did, SendStreak-compatible with optional properties.
struct EventsController {
    let services: APIServices

    func register(on routes: APIRoutes) {
        routes.add(.post, "/v1/events", record)
    }

    @Sendable func record(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.eventsWrite)
        let body = try await JSONBody.object(request)
        let recorded = try await services.events.record(workspaceId: principal.workspaceId, body: body, by: context.actor)
        return JSONResponse.make(status: .created, json: EventDTO(recorded).json)
    }
}
