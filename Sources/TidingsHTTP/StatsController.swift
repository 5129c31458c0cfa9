import Foundation
import Hummingbird
import TidingsDomain
import TidingsServices

/// `GET /v1/stats`: the workspace's mail per day (scope `messages:read`).
struct StatsController {
    let services: APIServices

    func register(on routes: APIRoutes) {
        routes.add(.get, "/v1/stats", report)
    }

    @Sendable func report(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.messagesRead)
        let query = QueryParameters(request.uri.query)
        let report = try await services.stats.report(workspaceId: principal.workspaceId, query: .init(
            from: query["from"], to: query["to"], groupBy: query["groupBy"], templateSlug: query["templateSlug"],
            announcementId: query["announcementId"], automationId: query["automationId"]
        ))
        func counts(_ values: [String: Int]) -> [String: JSONValue] {
            var object: [String: JSONValue] = [:]
            for metric in StatsService.metrics { object[metric] = .number(Double(values[metric] ?? 0)) }
            return object
        }
        return JSONResponse.make(status: .ok, json: .object([
            "from": .string(report.from), "to": .string(report.to), "groupBy": .string(report.groupBy),
            "data": .array(report.days.map { day in
                var row = counts(day.counts)
                row["date"] = .string(day.date)
                return .object(row)
            }),
            "totals": .object(counts(report.totals)),
        ]))
    }
}
