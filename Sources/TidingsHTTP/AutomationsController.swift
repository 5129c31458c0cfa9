import Foundation
import Hummingbird
import TidingsDomain
import TidingsServices

/// `/v1/automations`: automations, their statistics and enrolments (`automations:read` /
/// `automations:write`).
struct AutomationsController {
    let services: APIServices

    func register(on routes: APIRoutes) {
        routes.add(.get, "/v1/automations", list)
        routes.add(.post, "/v1/automations", create)
        routes.add(.get, "/v1/automations/{id}", get)
        routes.add(.patch, "/v1/automations/{id}", update)
        routes.add(.delete, "/v1/automations/{id}", delete)
        routes.add(.get, "/v1/automations/{id}/enrolments", enrolments)
    }

    @Sendable func list(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.automationsRead)
        let query = QueryParameters(request.uri.query)
        let page = try await services.automations.list(workspaceId: principal.workspaceId, cursor: query["cursor"], limit: try query.int("limit"))
        return JSONResponse.make(status: .ok, json: .object([
            "data": .array(page.items.map { AutomationJSON.automation($0, stats: nil) }),
            "nextCursor": page.nextCursor.map(JSONValue.string) ?? .null,
        ]))
    }

    @Sendable func create(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.automationsWrite)
        let automation = try await services.automations.create(workspaceId: principal.workspaceId, body: try await JSONBody.object(request), by: context.actor)
        return JSONResponse.make(status: .created, json: AutomationJSON.automation(automation, stats: AutomationStats()))
    }

    @Sendable func get(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.automationsRead)
        let detail = try await services.automations.get(workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context))
        return JSONResponse.make(status: .ok, json: AutomationJSON.automation(detail.automation, stats: detail.stats))
    }

    @Sendable func update(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.automationsWrite)
        let id = try request.pathParameter("id", context: context)
        let body = try await JSONBody.object(request)
        _ = try await services.automations.update(workspaceId: principal.workspaceId, id: id, body: body, by: context.actor)
        let detail = try await services.automations.get(workspaceId: principal.workspaceId, id: id)
        return JSONResponse.make(status: .ok, json: AutomationJSON.automation(detail.automation, stats: detail.stats))
    }

    @Sendable func delete(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.automationsWrite)
        try await services.automations.delete(workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context), by: context.actor)
        return Response(status: .noContent)
    }

    @Sendable func enrolments(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.automationsRead)
        let query = QueryParameters(request.uri.query)
        let page = try await services.automations.enrolments(
            workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context), state: query["state"],
            cursor: query["cursor"], limit: try query.int("limit")
        )
        return JSONResponse.make(status: .ok, json: .object([
            "data": .array(page.items.map(AutomationJSON.enrolment)),
            "nextCursor": page.nextCursor.map(JSONValue.string) ?? .null,
        ]))
    }
}

/// How automations and enrolments appear in answers: every field present, `null` when unset.
enum AutomationJSON {
    /// `templateSlug` and `delay` are set for the simple form only; `steps` always lists the
    /// steps that run (for the simple form, a wait when there is a delay, and the send).
    static func automation(_ automation: Automation, stats: AutomationStats?) -> JSONValue {
        var members: [String: JSONValue] = [
            "id": .string(automation.id),
            "name": .string(automation.name),
            "status": .string(automation.status.rawValue),
            "triggerEvent": .string(automation.triggerEvent),
            "frequency": .string(automation.frequency.rawValue),
            "marketing": .bool(automation.marketing),
            "topic": automation.topic.map(JSONValue.string) ?? .null,
            "templateSlug": .null,
            "delay": .null,
            "steps": .array(automation.definition.steps.map(\.jsonValue)),
            "exitEvents": .array(automation.definition.exitEvents.map(JSONValue.string)),
            "createdAt": .string(Timestamp.format(automation.createdAt)),
            "updatedAt": .string(Timestamp.format(automation.updatedAt)),
        ]
        if case .simple(let slug, let delay) = automation.definition.form {
            members["templateSlug"] = .string(slug)
            members["delay"] = delay?.jsonValue ?? .null
        }
        if let stats {
            members["stats"] = .object([
                "enrolled": .number(Double(stats.enrolled)), "inProgress": .number(Double(stats.inProgress)),
                "completed": .number(Double(stats.completed)), "exited": .number(Double(stats.exited)),
                "cancelled": .number(Double(stats.cancelled)), "sent": .number(Double(stats.sent)),
                "reasons": .object(stats.reasons.mapValues { .number(Double($0)) }),
            ])
        }
        return .object(members)
    }

    static func enrolment(_ view: AutomationService.EnrolmentView) -> JSONValue {
        let enrolment = view.enrolment
        return .object([
            "id": .string(enrolment.id),
            "contactId": enrolment.contactId.map(JSONValue.string) ?? .null,
            "email": view.email.map(JSONValue.string) ?? .null,
            "triggerId": .string(enrolment.triggerId),
            "state": .string(enrolment.state.rawValue),
            "stepIndex": .number(Double(enrolment.stepIndex)),
            "waitingFor": enrolment.waitingFor.map(JSONValue.string) ?? .null,
            "wakeAt": enrolment.wakeAt.map { .string(Timestamp.format($0)) } ?? .null,
            "reason": enrolment.reason.map(JSONValue.string) ?? .null,
            "createdAt": .string(Timestamp.format(enrolment.createdAt)),
            "updatedAt": .string(Timestamp.format(enrolment.updatedAt)),
            "finishedAt": enrolment.finishedAt.map { .string(Timestamp.format($0)) } ?? .null,
            "steps": .array(view.runs.map { run in
                .object([
                    "index": .number(Double(run.stepIndex)), "outcome": .string(run.outcome),
                    "messageId": run.messageId.map(JSONValue.string) ?? .null, "at": .string(Timestamp.format(run.at)),
                ])
            }),
        ])
    }
}
