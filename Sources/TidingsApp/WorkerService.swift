import ServiceLifecycle

/// Runs a queue worker inside `serve` (the webhook worker; the delivery worker has its own
/// `DeliveryService`): it starts once the migrations have run, and on SIGTERM it stops
/// claiming work and returns when the work in progress is done.
struct WorkerService: Service {
    let work: @Sendable () async -> Void
    let halt: @Sendable () -> Void
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
                await work()
            } onCancel: {
                halt()
            }
        } onGracefulShutdown: {
            halt()
        }
    }
}
