import Foundation
import Logging
import ServiceLifecycle
import TidingsServices

/// Signs the head of every audit stream once a minute, so the newest events are covered
/// by a checkpoint between the fixed every-100-events ones.
struct AuditCheckpointer: Service {
    let audit: AuditService
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await Task.sleep(for: interval)
                } catch {
                    return
                }
                do {
                    let signed = try await audit.checkpointHeads()
                    if signed > 0 { logger.debug("Signed audit checkpoints", metadata: ["streams": "\(signed)"]) }
                } catch {
                    logger.error("Could not sign audit checkpoints", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
