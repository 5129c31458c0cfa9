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

    /// The methods registered for paths matching `path`; empty when no route matches.
    func methods(matching path: String) -> [HTTPRequest.Method] {
        let requested = path.split(separator: "/")
        return routes.withLock { routes in
            routes.filter { route in
                route.segments.count == requested.count
                    && zip(route.segments, requested).allSatisfy { $0.hasPrefix("{") || $0.hasPrefix(":") || $0 == $1 }
            }.map(\.method)
        }
    }
}
