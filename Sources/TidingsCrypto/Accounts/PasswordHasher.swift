import _CryptoExtras
import Crypto
import Foundation
import Synchronization

/// Password storage with scrypt (RFC 7914), in a self-describing PHC string:
///
///     $scrypt$ln=15,r=8,p=1$<salt>$<hash>
///
/// `ln` is log2 of the cost N, `r` the block size, `p` the parallelism; salt and hash
/// are standard base64 without padding, as the PHC string format specifies. Because the
/// parameters travel with each hash, they can be raised later: old hashes keep
/// verifying, and ``needsRehash(_:)`` says when to store a new hash at the next
/// successful login.
///
/// scrypt is deliberately slow and memory-hard (N=2^15, r=8 takes 32 MiB and tens of
/// milliseconds), so ``hash(_:)`` and ``verify(_:against:)`` are `async` and run the
/// derivation on a private operation queue instead of the caller's thread. An event
/// loop or the shared cooperative thread pool is therefore never held up, and at most
/// ``maximumConcurrentDerivations`` derivations run at once so a burst of logins cannot
/// claim unbounded memory; further requests wait their turn without holding a thread.
/// A derivation, once started, runs to completion even if the calling task is cancelled.
///
/// Passwords are hashed as the UTF-8 of their NFC form (see `PasswordNormalization`),
/// so the same password typed on different systems verifies.
public struct PasswordHasher: Sendable {
    /// scrypt cost parameters.
    public struct Parameters: Sendable, Hashable, CustomStringConvertible {
        /// log2 of the CPU/memory cost N.
        public let logN: Int
        /// Block size r.
        public let blockSize: Int
        /// Parallelism p.
        public let parallelism: Int

        /// N=2^15, r=8, p=1: 32 MiB per derivation, the interactive-login setting
        /// recommended by OWASP and by scrypt's author for a server-side hash.
        public static let recommended = Parameters(validLogN: 15, blockSize: 8, parallelism: 1)

        /// Largest memory one derivation may use: 256 MiB, eight times the recommended
        /// setting. Checked for parameters read from storage too, so a tampered database
        /// row cannot make one login attempt allocate gigabytes.
        public static let maximumMemoryBytes = 256 * 1024 * 1024
        /// Largest N·r·p accepted, for the same reason on the CPU side: 64 times the
        /// recommended setting.
        public static let maximumWork = 1 << 24

        /// `nil` when the combination is invalid for scrypt or beyond the limits above.
        ///
        /// Also refused: combinations the underlying implementation cannot run. It needs
        /// N + p + 1 blocks of 128·r bytes but caps its memory at 128·N·r·p plus one page
        /// (at least 4 KiB), which is too little when p is 1 and r is above 16, and would
        /// make every derivation fail.
        public init?(logN: Int, blockSize: Int, parallelism: Int) {
            guard (1...30).contains(logN),
                  (1...64).contains(blockSize),
                  (1...64).contains(parallelism),
                  // RFC 7914: N < 2^(128·r/8).
                  logN < 16 * blockSize
            else { return nil }
            // With the ranges above none of these products can overflow `Int`.
            let n = 1 << logN
            let work = n * blockSize * parallelism
            let memory = 128 * blockSize * (n + parallelism + 1)
            let implementationBudget = 128 * n * blockSize * parallelism + 4096
            guard work <= Self.maximumWork,
                  memory <= Self.maximumMemoryBytes,
                  memory <= implementationBudget
            else { return nil }
            self.init(validLogN: logN, blockSize: blockSize, parallelism: parallelism)
        }

        private init(validLogN: Int, blockSize: Int, parallelism: Int) {
            self.logN = validLogN
            self.blockSize = blockSize
            self.parallelism = parallelism
        }

        /// The PHC parameter segment, e.g. `ln=15,r=8,p=1`.
        public var description: String { "ln=\(logN),r=\(blockSize),p=\(parallelism)" }
    }

    /// Why hashing failed. Verification never throws: any failure there is a mismatch.
    public enum HashingError: Error, Sendable, Hashable {
        /// The password was empty; a policy should have refused it earlier.
        case emptyPassword
        /// The scrypt implementation reported an error.
        case derivationFailed
    }

    /// A parsed PHC scrypt string.
    public struct StoredHash: Sendable, Hashable {
        public static let identifier = "scrypt"
        /// Salts and hashes outside these sizes are not accepted from storage; they are
        /// wide enough for hashes made by other scrypt implementations.
        public static let saltSizes = 1...64
        public static let hashSizes = 16...64

        public let parameters: Parameters
        public let salt: [UInt8]
        public let hash: [UInt8]

        public init?(parameters: Parameters, salt: [UInt8], hash: [UInt8]) {
            guard Self.saltSizes.contains(salt.count), Self.hashSizes.contains(hash.count) else { return nil }
            self.parameters = parameters
            self.salt = salt
            self.hash = hash
        }

        /// Parses `$scrypt$ln=…,r=…,p=…$<salt>$<hash>`; `nil` for anything else, including
        /// parameters outside the limits of ``Parameters``. Never traps on malformed input.
        public init?(parsing text: String) {
            // A stored hash is well under 200 bytes; refuse absurd input before splitting it.
            guard text.utf8.count <= 512 else { return nil }
            let fields = text.split(separator: "$", omittingEmptySubsequences: false)
            guard fields.count == 5, fields[0].isEmpty, fields[1] == Self.identifier,
                  let parameters = Self.parseParameters(fields[2]),
                  let salt = Self.decodeBase64(fields[3]),
                  let hash = Self.decodeBase64(fields[4])
            else { return nil }
            self.init(parameters: parameters, salt: salt, hash: hash)
        }

        /// The PHC string.
        public var encoded: String {
            "$\(Self.identifier)$\(parameters)$\(Self.encodeBase64(salt))$\(Self.encodeBase64(hash))"
        }

        /// `ln`, `r` and `p`, each exactly once, in any order, as plain decimal numbers.
        private static func parseParameters(_ field: Substring) -> Parameters? {
            var values: [Substring: Int] = [:]
            for pair in field.split(separator: ",", omittingEmptySubsequences: false) {
                let parts = pair.split(separator: "=", omittingEmptySubsequences: false)
                guard parts.count == 2,
                      ["ln", "r", "p"].contains(parts[0]),
                      values[parts[0]] == nil,
                      (1...3).contains(parts[1].utf8.count),
                      parts[1].utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                      let value = Int(parts[1])
                else { return nil }
                values[parts[0]] = value
            }
            guard values.count == 3, let logN = values["ln"], let r = values["r"], let p = values["p"] else { return nil }
            return Parameters(logN: logN, blockSize: r, parallelism: p)
        }

        static func encodeBase64(_ bytes: [UInt8]) -> String {
            var text = Data(bytes).base64EncodedString()
            while text.last == "=" { text.removeLast() }
            return text
        }

        /// Unpadded standard base64, refusing padding, whitespace and any spelling that
        /// does not re-encode identically, so each hash has exactly one stored form.
        static func decodeBase64(_ field: Substring) -> [UInt8]? {
            guard !field.isEmpty, field.utf8.count % 4 != 1,
                  field.utf8.allSatisfy({ byte in
                      (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                          || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                          || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                          || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "/")
                  })
            else { return nil }
            let padding = String(repeating: "=", count: (4 - field.utf8.count % 4) % 4)
            guard let data = Data(base64Encoded: String(field) + padding) else { return nil }
            let bytes = [UInt8](data)
            guard encodeBase64(bytes) == field else { return nil }
            return bytes
        }
    }

    /// Salt size for new hashes: 128 bits, so salts never repeat in practice.
    public static let saltByteCount = 16
    /// Output size for new hashes: 256 bits.
    public static let hashByteCount = 32

    /// Parameters for new hashes; stored hashes with weaker ones need rehashing.
    public let parameters: Parameters
    /// How many derivations may run at the same time.
    public let maximumConcurrentDerivations: Int
    /// One serial queue per concurrent derivation ("lanes"), taken in turn: at most that
    /// many scrypt runs at once, each on a dispatch thread rather than the caller's.
    /// (Plain serial queues rather than an `OperationQueue` with a concurrency limit, whose
    /// Linux implementation could leave added operations unstarted under load.)
    private let lanes: [DispatchQueue]
    private let nextLane = LaneCounter()

    /// Marks the lanes, so a test can tell work ran on one.
    nonisolated(unsafe) static let laneKey = DispatchSpecificKey<Int>()

    private final class LaneCounter: Sendable {
        let next = Mutex(0)
    }

    /// - Parameters:
    ///   - parameters: Cost for new hashes. Tests can use lower values to run fast.
    ///   - maximumConcurrentDerivations: Defaults to the number of active processor
    ///     cores: more would only compete for the same cores while multiplying memory.
    public init(
        parameters: Parameters = .recommended,
        maximumConcurrentDerivations: Int = ProcessInfo.processInfo.activeProcessorCount
    ) {
        precondition(maximumConcurrentDerivations >= 1, "at least one derivation must be able to run")
        self.parameters = parameters
        self.maximumConcurrentDerivations = maximumConcurrentDerivations
        self.lanes = (0..<maximumConcurrentDerivations).map { index in
            let lane = DispatchQueue(label: "PasswordHasher.scrypt.\(index)", qos: .userInitiated)
            lane.setSpecific(key: Self.laneKey, value: index)
            return lane
        }
    }

    /// Hashes `password` with a fresh random salt and returns the PHC string to store.
    public func hash(_ password: String) async throws(HashingError) -> String {
        let input = Self.passwordBytes(password)
        guard !input.isEmpty else { throw .emptyPassword }
        let parameters = self.parameters
        let salt = SecureRandom.bytes(count: Self.saltByteCount)
        let result: Result<String, HashingError> = await run {
            guard let derived = Self.derive(input, salt: salt, parameters: parameters, byteCount: Self.hashByteCount),
                  let stored = StoredHash(parameters: parameters, salt: salt, hash: derived)
            else { return .failure(.derivationFailed) }
            return .success(stored.encoded)
        }
        return try result.get()
    }

    /// `true` when `password` matches the stored PHC string.
    ///
    /// The stored string's own parameters, salt and hash length are used, so hashes made
    /// with earlier settings keep working. A malformed or tampered string, parameters
    /// beyond the limits of ``Parameters``, or an empty password give `false` without
    /// running scrypt. The final comparison takes the same time wherever the hashes differ.
    ///
    /// For an unknown account, verify against a hash of a random password made once at
    /// start-up, so that the response time does not reveal which accounts exist.
    public func verify(_ password: String, against stored: String) async -> Bool {
        let input = Self.passwordBytes(password)
        guard !input.isEmpty, let parsed = StoredHash(parsing: stored) else { return false }
        return await run {
            guard let derived = Self.derive(input, salt: parsed.salt, parameters: parsed.parameters, byteCount: parsed.hash.count)
            else { return false }
            return ConstantTime.equals(derived, parsed.hash)
        }
    }

    /// `true` when the stored hash should be replaced by a new ``hash(_:)`` of the
    /// password, which the caller has in hand right after a successful ``verify(_:against:)``:
    /// when any of its parameters is below the current ones, its salt or hash is shorter
    /// than what ``hash(_:)`` produces now, or it is not a string this type can read.
    public func needsRehash(_ stored: String) -> Bool {
        guard let parsed = StoredHash(parsing: stored) else { return true }
        return parsed.parameters.logN < parameters.logN
            || parsed.parameters.blockSize < parameters.blockSize
            || parsed.parameters.parallelism < parameters.parallelism
            || parsed.salt.count < Self.saltByteCount
            || parsed.hash.count < Self.hashByteCount
    }

    // MARK: - Internals

    /// Runs `work` on the next lane and resumes the caller with its result.
    func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        let lane = nextLane.next.withLock { next in
            defer { next = (next + 1) % lanes.count }
            return lanes[next]
        }
        return await withCheckedContinuation { continuation in
            lane.async {
                continuation.resume(returning: work())
            }
        }
    }

    /// The queues derivations run on, for tests that check work leaves the caller's thread.
    var derivationQueues: [DispatchQueue] { lanes }

    static func passwordBytes(_ password: String) -> [UInt8] {
        Array(PasswordNormalization.normalize(password).utf8)
    }

    /// One scrypt derivation; `nil` if the implementation reports an error. Callers
    /// guarantee a non-empty password and salt (the implementation needs real buffers).
    static func derive(_ password: [UInt8], salt: [UInt8], parameters: Parameters, byteCount: Int) -> [UInt8]? {
        guard !password.isEmpty, !salt.isEmpty else { return nil }
        do {
            let key = try KDF.Scrypt.deriveKey(
                from: password,
                salt: salt,
                outputByteCount: byteCount,
                rounds: 1 << parameters.logN,
                blockSize: parameters.blockSize,
                parallelism: parameters.parallelism
            )
            return key.withUnsafeBytes { Array($0) }
        } catch {
            return nil
        }
    }
}
