import ServiceLifecycle
import TidingsServices

/// Runs the delivery worker inside `serve`. On SIGTERM it stops claiming messages and
/// returns once the SMTP transactions in progress are complete; a message it had not claimed
/// stays queued for the next start (or another instance).
struct DeliveryService: Service {
    let worker: DeliveryWorker
    /// Whether the schema is current: the worker starts only once the migrations have run.
    let schemaIsCurrent: @Sendable () async -> Bool

    func run() async throws {
        // Started beside the server, which migrates first: wait for it rather than claim from missing tables.
        while !(await schemaIsCurrent()) {
            do {
                try await Task.sleep(for: .milliseconds(100))
            } catch {
                return
            }
            if Task.isCancelled || Task.isShuttingDownGracefully { return }
        }
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await worker.run()
            } onCancel: {
                worker.stop()
            }
        } onGracefulShutdown: {
            worker.stop()
        }
    }
}
