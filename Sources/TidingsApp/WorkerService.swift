import ServiceLifecycle
import TidingsServices

/// Runs a queue worker (deliveries, announcement fan-outs, …) inside `serve`. On SIGTERM the
/// worker stops claiming and returns once the work in progress is complete; a job it had not
/// claimed stays queued for the next start (or another instance).
struct WorkerService: Service {
    let worker: any QueueWorker
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
