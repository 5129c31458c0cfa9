import Foundation
import TidingsDomain

extension AuditActor {
    /// Changes made with the `tidings` command are an operator's, named by the system
    /// account that ran it (the CLI runs on the server, with access to its secrets).
    public static var commandLine: AuditActor {
        let account = ProcessInfo.processInfo.environment["SUDO_USER"] ?? ProcessInfo.processInfo.environment["USER"] ?? "unknown"
        return AuditActor(kind: .operator, id: "cli:\(account)")
    }
}
