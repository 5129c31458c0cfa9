import ServiceLifecycle
import TidingsServices

/// Runs the delivery worker inside `serve`. On SIGTERM it stops claiming messages and
/// returns once the SMTP transactions in progress are complete; a message it had not claimed
/// stays queued for the next start (or another instance).
struct DeliveryService: Service {
    let worker: DeliveryWorker

    func run() async throws {
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
