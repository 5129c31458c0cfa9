import Foundation
import Synchronization

/// A program a test starts (a peer, a verifier, `tidings serve`), started with `posix_spawn`
/// and reaped here by its pid.
///
/// Foundation's `Process` is not used. On Linux it lists /proc/self/fd to find the
/// descriptors to close in the child and copies each entry's whole 256-byte name field, so
/// it reads past the directory buffer when the last entry ends near an unmapped page: with a
/// thousand descriptors open (hundreds of tests at once), the suite crashed there now and
/// then (SIGSEGV in memcpy under `Process.run()`). Here the child closes every inherited
/// descriptor above 2 itself (`closefrom`), after its standard streams are in place.
final class ChildProcess: Sendable {
    let pid: pid_t
    /// The raw wait status, once the child has been reaped.
    private let reaped = Mutex<Int32?>(nil)

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Starts `executable`. Standard input, output and error are the given descriptors
    /// (the caller keeps and closes its own copies), or /dev/null when nil. `environment`
    /// replaces the test's environment; `directory` is the child's working directory. The
    /// child gets its own process group, an empty signal mask and default signal actions.
    init(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, directory: URL? = nil,
        input: Int32? = nil, output: Int32? = nil, error: Int32? = nil
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (stream, source, flags) in [(Int32(0), input, O_RDONLY), (1, output, O_WRONLY), (2, error, O_WRONLY)] {
            if let source {
                posix_spawn_file_actions_adddup2(&actions, source, stream)
            } else {
                posix_spawn_file_actions_addopen(&actions, stream, "/dev/null", flags, 0)
            }
        }
        guard Self.closeFrom(&actions, 3) == 0 else { throw Failure(description: "posix_spawn_file_actions_addclosefrom_np failed") }
        if let directory, Self.changeDirectory(&actions, directory.path) != 0 {
            throw Failure(description: "posix_spawn_file_actions_addchdir_np failed for \(directory.path)")
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp: [UnsafeMutablePointer<CChar>?]? = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer { envp?.forEach { free($0) } }
        var pid = pid_t()
        let result = envp.map { posix_spawn(&pid, executable, &actions, &attributes, argv, $0) }
            ?? posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard result == 0 else {
            throw Failure(description: "could not start \(executable): \(String(cString: strerror(result)))")
        }
        self.pid = pid
    }

    // glibc (2.34 and later) has both; Swift's Glibc module leaves out its GNU extensions.
    private static let closeFrom = glibc(
        "posix_spawn_file_actions_addclosefrom_np",
        as: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self
    )
    private static let changeDirectory = glibc(
        "posix_spawn_file_actions_addchdir_np",
        as: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32).self
    )

    private static func glibc<T>(_ name: String, as type: T.Type) -> T {
        guard let symbol = dlsym(nil, name) else { fatalError("this C library has no \(name) (glibc 2.34 or later has)") }
        return unsafeBitCast(symbol, to: type)
    }

    /// Whether the child is still running; reaps it when it has ended.
    var isRunning: Bool {
        reaped.withLock { status in
            guard status == nil else { return false }
            var raw: Int32 = 0
            switch waitpid(pid, &raw, WNOHANG) {
            case 0: return true
            case pid: status = raw; return false
            default: status = 0x7f00; return false  // not ours to wait for any more: reported as exit 127
            }
        }
    }

    /// The exit code, or the number of the signal that ended the child; nil while it runs.
    var terminationStatus: Int32? {
        guard !isRunning, let raw = reaped.withLock({ $0 }) else { return nil }
        let signal = raw & 0x7f
        return signal == 0 ? (raw >> 8) & 0xff : signal
    }

    /// Sends `signal` to the child, if it still runs.
    func send(_ signal: Int32) {
        guard isRunning else { return }
        kill(pid, signal)
    }

    /// Suspends, rather than blocks one of the threads the concurrently running tests
    /// share, until the child has ended; returns `terminationStatus`.
    @discardableResult
    func waitForExit() async -> Int32 {
        while true {
            if let status = terminationStatus { return status }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Blocks until the child has ended (for synchronous clean-up only).
    func waitUntilExit() {
        while isRunning { usleep(10_000) }
    }

    /// Ends the child with SIGKILL, if it still runs, and reaps it.
    func killAndWait() {
        send(SIGKILL)
        waitUntilExit()
    }
}
