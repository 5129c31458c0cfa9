import Foundation
import Logging
import Synchronization

/// Where the suite's logs go. With `TIDINGS_TEST_LOG_FILE` set (scripts/test sets it), every
/// logger a test builds writes at trace level to that file, and every `tidings` process a
/// test runs has its output appended to it; after the suite, scripts/test scans the file for
/// email addresses, full IP addresses, API keys and message contents. Without it, tests log
/// warnings and worse to standard error.
enum TestLog {
    static let path = ProcessInfo.processInfo.environment["TIDINGS_TEST_LOG_FILE"]

    static func logger(_ label: String) -> Logger {
        guard let path else {
            var logger = Logger(label: label)
            logger.logLevel = .warning
            return logger
        }
        var logger = Logger(label: label) { label in CapturingHandler(label: label, sink: Sink.shared(path)) }
        logger.logLevel = .trace
        return logger
    }

    /// Adds output of a `tidings` process to the captured log.
    static func append(_ text: String) {
        guard let path, !text.isEmpty else { return }
        Sink.shared(path).write(text.hasSuffix("\n") ? text : text + "\n")
    }

    final class Sink: Sendable {
        private let handle: Mutex<FileHandle?>
        private static let instance = Mutex<Sink?>(nil)

        private init(path: String) {
            if !FileManager.default.fileExists(atPath: path) {
                _ = FileManager.default.createFile(atPath: path, contents: nil)
            }
            let handle = FileHandle(forWritingAtPath: path)
            _ = try? handle?.seekToEnd()
            self.handle = Mutex(handle)
        }

        static func shared(_ path: String) -> Sink {
            instance.withLock { sink in
                if let sink { return sink }
                let created = Sink(path: path)
                sink = created
                return created
            }
        }

        func write(_ line: String) {
            handle.withLock { $0?.write(Data(line.utf8)) }
        }
    }

    struct CapturingHandler: LogHandler {
        let label: String
        let sink: Sink
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            sink.write("\(event.level) \(label): \(event.message) \(fields) [\(event.source)]\n")
        }
    }
}
