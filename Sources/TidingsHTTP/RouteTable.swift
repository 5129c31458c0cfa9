import Hummingbird
import Synchronization

/// The API's routes as registered, so an unmatched request can be told apart:
/// a known path with another method is 405, anything else 404.
final class RouteTable: Sendable {
    private let routes = Mutex<[(method: HTTPRequest.Method, segments: [Substring])]>([])

    func add(_ method: HTTPRequest.Method, _ path: String) {
        let segments = path.split(separator: "/")
        routes.withLock { $0.append((method, segments)) }
    }

    /// The methods of the route the router resolves `path` to; empty when no route matches.
    ///
    /// Like the router, a literal segment beats a parameter: `/v1/contacts/import`
    /// is the import route, not `/v1/contacts/{email}`.
    func methods(matching path: String) -> [HTTPRequest.Method] {
        let requested = path.split(separator: "/")
        let matching = routes.withLock { routes in
            routes.filter { route in
                route.segments.count == requested.count
                    && zip(route.segments, requested).allSatisfy { Self.isParameter($0) || $0 == $1 }
            }
        }
        guard let best = matching.map(\.segments).min(by: Self.isMoreSpecific) else { return [] }
        return matching.filter { $0.segments == best }.map(\.method)
    }

    private static func isParameter(_ segment: Substring) -> Bool {
        segment.hasPrefix("{") || segment.hasPrefix(":")
    }

    /// At the first segment where the patterns differ in kind, the literal one wins.
    private static func isMoreSpecific(_ lhs: [Substring], _ rhs: [Substring]) -> Bool {
        for (left, right) in zip(lhs, rhs) where isParameter(left) != isParameter(right) {
            return !isParameter(left)
        }
        return false
    }
}
