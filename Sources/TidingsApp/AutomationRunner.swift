import ServiceLifecycle
import TidingsServices

/// Runs the automation worker inside `serve`. On SIGTERM it stops claiming and returns once
/// the jobs in hand are done; the rest stay queued for the next start (or another instance),
/// and a job cut off by a crash is claimed again when its lease runs out.
struct AutomationRunner: Service {
    let worker: AutomationWorker
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
