import Foundation
import Hummingbird
import Testing
import TidingsHTTP

/// The published document and the router must describe the same API.
@Suite("OpenAPI contract")
struct OpenAPIContractTests {
    @Test("Every route is documented and every documented operation is routed")
    func documentMatchesRouter() async throws {
        let document = try #require(try JSONSerialization.jsonObject(with: OpenAPIDocument.data()) as? [String: Any])
        #expect(document["openapi"] as? String == "3.1.0")
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        var documented = Set<String>()
        var operationIds = Set<String>()
        for (path, item) in paths {
            for (method, operation) in item where ["get", "post", "put", "patch", "delete"].contains(method) {
                documented.insert("\(method.uppercased()) \(path)")
                let id = try #require((operation as? [String: Any])?["operationId"] as? String, "\(method) \(path) has no operationId")
                #expect(operationIds.insert(id).inserted, "operationId \(id) is used twice")
            }
        }
        let routed = try await withTidings(.sqlite) { tidings in
            // The dashboard's pages are not part of the API; the tracked URLs in mail are.
            Set(try tidings.makeRouter().routes.map { "\($0.method.rawValue) \($0.path.description)" }.filter {
                $0.contains(" /v1/") || $0.contains(" /t/") || $0.hasSuffix(" /healthz") || $0.hasSuffix(" /readyz")
            })
        }
        #expect(routed.subtracting(documented).sorted() == [], "routes missing from the document")
        #expect(documented.subtracting(routed).sorted() == [], "documented operations without a route")
        #expect(routed.count >= 16)
    }

    @Test("The document is served without a key", arguments: TestBackend.all)
    func documentIsServed(backend: TestBackend) async throws {
        try await withAPI(backend) { api, _ in
            let reply = try await api.get("/v1/openapi.json", key: nil)
            #expect(reply.status == .ok)
            #expect(reply.json["openapi"] as? String == "3.1.0")
            #expect(try await api.get("/healthz", key: nil).status == .ok)
            #expect(try await api.get("/readyz", key: nil).json["status"] as? String == "ready")
        }
    }
}
