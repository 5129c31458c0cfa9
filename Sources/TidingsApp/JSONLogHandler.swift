import Foundation
import Logging
import Synchronization
import TidingsDomain

/// One JSON object per line on standard error, for log collectors.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String
    private static let output = Mutex<Void>(())

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [String: String] = [
            "time": Timestamp.format(Date()),
            "level": event.level.rawValue,
            "message": event.message.description,
            "logger": label,
        ]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) {
            fields[key] = value.description
        }
        guard var line = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]) else { return }
        line.append(0x0A)
        Self.output.withLock { _ in
            FileHandle.standardError.write(line)
        }
    }
}

public enum LogSetup {
    /// Installs the process-wide log handler once, at start-up.
    private static let bootstrapped = Mutex(false)

    /// Installs the log handler; the first call wins (swift-log allows one per process,
    /// and a command may open Tidings more than once).
    public static func bootstrap(format: TidingsConfiguration.LogFormat, level: Logger.Level) {
        guard bootstrapped.withLock({ done in
            defer { done = true }
            return !done
        }) else { return }
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = switch format {
            case .json: JSONLogHandler(label: label)
            case .text: StreamLogHandler.standardError(label: label)
            }
            handler.logLevel = level
            return handler
        }
    }
}
