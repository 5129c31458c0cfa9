import Foundation
import Logging
import ServiceLifecycle
import TidingsStorage

/// Background work run at a fixed interval while the server runs: signing the heads of
/// the audit streams, disabling accounts unused for too long. A failed run is logged and
/// retried at the next interval.
struct PeriodicJob: Service {
    let name: String
    let interval: Duration
    let logger: Logger
    let work: @Sendable () async throws -> Void

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await Task.sleep(for: interval)
                } catch {
                    return
                }
                do {
                    // Background jobs are instance-level work.
                    try await TenantScope.with(.instance) { try await work() }
                } catch {
                    logger.error("Background job failed", metadata: ["job": "\(name)", "error_type": "\(type(of: error))"])
                }
            }
        }
    }
}
