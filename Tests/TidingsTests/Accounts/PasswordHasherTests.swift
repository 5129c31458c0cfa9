import Foundation
import Testing
@testable import TidingsCrypto

@Suite("PasswordHasher")
struct PasswordHasherTests {
    /// Cheap parameters so the suite runs fast; the format and logic are the same.
    static let fast = PasswordHasher.Parameters(logN: 10, blockSize: 8, parallelism: 1)!
    static let hasher = PasswordHasher(parameters: fast)

    static func hex(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            bytes.append(UInt8(text[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }

    @Test("hash then verify round-trips")
    func roundTrip() async throws {
        let stored = try await Self.hasher.hash("correct horse battery staple")
        #expect(await Self.hasher.verify("correct horse battery staple", against: stored))
    }

    @Test("a wrong password fails")
    func wrongPassword() async throws {
        let stored = try await Self.hasher.hash("correct horse battery staple")
        #expect(await Self.hasher.verify("correct horse battery stapler", against: stored) == false)
        #expect(await Self.hasher.verify("Correct horse battery staple", against: stored) == false)
        #expect(await Self.hasher.verify("", against: stored) == false)
    }

    @Test("the stored string has the PHC shape with a 16-byte salt and a 32-byte hash")
    func format() async throws {
        let stored = try await Self.hasher.hash("correct horse battery staple")
        #expect(stored.hasPrefix("$scrypt$ln=10,r=8,p=1$"))
        let fields = stored.split(separator: "$", omittingEmptySubsequences: false)
        #expect(fields.count == 5)
        #expect(fields[3].count == 22, "16 bytes in unpadded base64")
        #expect(fields[4].count == 43, "32 bytes in unpadded base64")
        #expect(!fields[3].contains("=") && !fields[4].contains("="), "no base64 padding")
        let parsed = try #require(PasswordHasher.StoredHash(parsing: stored))
        #expect(parsed.parameters == Self.fast)
        #expect(parsed.salt.count == 16)
        #expect(parsed.hash.count == 32)
        #expect(parsed.encoded == stored)
    }

    @Test("the same password gets a different salt every time")
    func freshSalts() async throws {
        let first = try await Self.hasher.hash("correct horse battery staple")
        let second = try await Self.hasher.hash("correct horse battery staple")
        #expect(first != second)
        #expect(await Self.hasher.verify("correct horse battery staple", against: second))
    }

    @Test("the default parameters are N=2^15, r=8, p=1 and produce a working hash")
    func defaults() async throws {
        let hasher = PasswordHasher()
        #expect(hasher.parameters == .recommended)
        #expect(hasher.parameters.description == "ln=15,r=8,p=1")
        let stored = try await hasher.hash("a real default-cost password")
        #expect(stored.hasPrefix("$scrypt$ln=15,r=8,p=1$"))
        #expect(await hasher.verify("a real default-cost password", against: stored))
        #expect(!hasher.needsRehash(stored))
    }

    @Test("RFC 7914 test vectors verify through the PHC string", arguments: [
        ("password", "NaCl", 10, 8, 16,
         "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"),
        ("pleaseletmein", "SodiumChloride", 14, 8, 1,
         "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887"),
    ])
    func rfcVectors(password: String, salt: String, logN: Int, r: Int, p: Int, key: String) async throws {
        let parameters = try #require(PasswordHasher.Parameters(logN: logN, blockSize: r, parallelism: p))
        let stored = try #require(PasswordHasher.StoredHash(parameters: parameters, salt: Array(salt.utf8), hash: Self.hex(key)))
        #expect(await Self.hasher.verify(password, against: stored.encoded))
        #expect(await Self.hasher.verify(password + "!", against: stored.encoded) == false)
    }

    @Test("passwords are compared in NFC")
    func unicodeNormalization() async throws {
        let stored = try await Self.hasher.hash("caf\u{E9} au lait, s'il vous pla\u{EE}t")
        #expect(await Self.hasher.verify("cafe\u{301} au lait, s'il vous plai\u{302}t", against: stored))
    }

    @Test("an empty password cannot be hashed")
    func emptyPassword() async {
        await #expect(throws: PasswordHasher.HashingError.emptyPassword) {
            _ = try await Self.hasher.hash("")
        }
    }

    // MARK: Tampering

    @Test("tampered or malformed strings fail cleanly", arguments: [
        "",
        "$",
        "$$$$",
        "plaintext-password",
        "$scrypt$",
        "$scrypt$ln=10,r=8,p=1$",
        "$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA",
        "$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$",
        "$scrypt$ln=10,r=8,p=1$$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$scrypt$ln=10,r=8$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$scrypt$ln=10,r=8,p=1,x=2$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$scrypt$ln=10,ln=10,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$scrypt$ln=-1,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$scrypt$ln=0,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$scrypt$ln=+9,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$scrypt$ln=99999999999999999999,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$scrypt$ln=40,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$scrypt$ln=24,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$scrypt$ln=10,r=0,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$scrypt$ln=10,r=8,p=0$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$scrypt$ln=10,r=32,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRz YWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$scrypt$ln=10,r=8,p=1$c2Fsd-NhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA",
        "$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdB$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g$",
        "x$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$SCRYPT$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        "$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + String(repeating: "A", count: 1000),
    ])
    func malformed(stored: String) async {
        #expect(PasswordHasher.StoredHash(parsing: stored) == nil)
        #expect(await Self.hasher.verify("password", against: stored) == false)
        #expect(Self.hasher.needsRehash(stored))
    }

    @Test("flipping any character of a real hash makes verification fail")
    func bitFlips() async throws {
        let stored = try await Self.hasher.hash("correct horse battery staple")
        let characters = Array(stored)
        let saltStart = stored.distance(from: stored.startIndex, to: stored.range(of: "=1$")!.upperBound)
        for index in stride(from: saltStart, to: characters.count, by: 3) {
            var tampered = characters
            tampered[index] = tampered[index] == "A" ? "B" : "A"
            #expect(await Self.hasher.verify("correct horse battery staple", against: String(tampered)) == false)
        }
    }

    @Test("parameters in any order parse; only canonical base64 does")
    func parsing() throws {
        let canonical = "$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
        let parsed = try #require(PasswordHasher.StoredHash(parsing: canonical))
        #expect(parsed.parameters.logN == 10)
        #expect(parsed.parameters.blockSize == 8)
        #expect(parsed.parameters.parallelism == 1)
        #expect(parsed.salt == Array("saltsaltsaltsalt".utf8))
        #expect(parsed.hash == Array("hashhashhashhashhashhashhashhash".utf8))
        #expect(parsed.encoded == canonical)
        let reordered = try #require(PasswordHasher.StoredHash(parsing: "$scrypt$p=1,r=8,ln=10$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"))
        #expect(reordered == parsed)
    }

    @Test("parameter limits")
    func parameterLimits() {
        #expect(PasswordHasher.Parameters(logN: 15, blockSize: 8, parallelism: 1) == .recommended)
        #expect(PasswordHasher.Parameters(logN: 17, blockSize: 8, parallelism: 1) != nil, "128 MiB")
        #expect(PasswordHasher.Parameters(logN: 18, blockSize: 8, parallelism: 1) == nil, "256 MiB plus working blocks")
        #expect(PasswordHasher.Parameters(logN: 19, blockSize: 8, parallelism: 1) == nil, "512 MiB")
        #expect(PasswordHasher.Parameters(logN: 10, blockSize: 8, parallelism: 16) != nil, "RFC 7914 case 2")
        #expect(PasswordHasher.Parameters(logN: 16, blockSize: 1, parallelism: 1) == nil, "N must be below 2^(16r)")
        #expect(PasswordHasher.Parameters(logN: 15, blockSize: 1, parallelism: 1) != nil)
        #expect(PasswordHasher.Parameters(logN: 10, blockSize: 16, parallelism: 1) != nil)
        #expect(PasswordHasher.Parameters(logN: 10, blockSize: 17, parallelism: 1) == nil, "beyond the implementation's budget")
        #expect(PasswordHasher.Parameters(logN: 10, blockSize: 32, parallelism: 2) != nil)
        #expect(PasswordHasher.Parameters(logN: 0, blockSize: 8, parallelism: 1) == nil)
    }

    @Test("every accepted parameter combination actually derives", arguments: [
        (1, 1, 1), (2, 1, 1), (4, 16, 1), (4, 17, 2), (2, 64, 2), (8, 1, 64), (3, 3, 3),
    ])
    func acceptedParametersWork(logN: Int, r: Int, p: Int) async throws {
        let parameters = try #require(PasswordHasher.Parameters(logN: logN, blockSize: r, parallelism: p))
        let hasher = PasswordHasher(parameters: parameters)
        let stored = try await hasher.hash("any password at all")
        #expect(await hasher.verify("any password at all", against: stored))
    }

    // MARK: Rehash

    @Test("needsRehash when any parameter is below the current ones")
    func needsRehash() async throws {
        let current = PasswordHasher(parameters: PasswordHasher.Parameters(logN: 11, blockSize: 8, parallelism: 2)!)
        let same = try await current.hash("correct horse battery staple")
        #expect(!current.needsRehash(same))

        let lowerN = try await PasswordHasher(parameters: PasswordHasher.Parameters(logN: 10, blockSize: 8, parallelism: 2)!).hash("x-password")
        let lowerR = try await PasswordHasher(parameters: PasswordHasher.Parameters(logN: 11, blockSize: 4, parallelism: 2)!).hash("x-password")
        let lowerP = try await PasswordHasher(parameters: PasswordHasher.Parameters(logN: 11, blockSize: 8, parallelism: 1)!).hash("x-password")
        let higher = try await PasswordHasher(parameters: PasswordHasher.Parameters(logN: 12, blockSize: 8, parallelism: 2)!).hash("x-password")
        #expect(current.needsRehash(lowerN))
        #expect(current.needsRehash(lowerR))
        #expect(current.needsRehash(lowerP))
        #expect(!current.needsRehash(higher))
        // Older hashes still verify under the new settings.
        #expect(await current.verify("x-password", against: lowerN))
        #expect(await current.verify("x-password", against: higher))
    }

    @Test("needsRehash for short salts or hashes from elsewhere")
    func needsRehashForShortSaltOrHash() throws {
        let shortSalt = try #require(PasswordHasher.StoredHash(parameters: .recommended, salt: Array("NaCl".utf8), hash: [UInt8](repeating: 1, count: 32)))
        let shortHash = try #require(PasswordHasher.StoredHash(parameters: .recommended, salt: [UInt8](repeating: 1, count: 16), hash: [UInt8](repeating: 1, count: 16)))
        let fine = try #require(PasswordHasher.StoredHash(parameters: .recommended, salt: [UInt8](repeating: 1, count: 16), hash: [UInt8](repeating: 1, count: 32)))
        let hasher = PasswordHasher()
        #expect(hasher.needsRehash(shortSalt.encoded))
        #expect(hasher.needsRehash(shortHash.encoded))
        #expect(!hasher.needsRehash(fine.encoded))
    }

    // MARK: Execution

    @Test("derivations run on the hasher's own queue, not the caller's thread")
    func runsOffCaller() async {
        let hasher = Self.hasher
        #expect(DispatchQueue.getSpecific(key: PasswordHasher.laneKey) == nil, "the test itself is on no lane")
        let lane = await hasher.run { DispatchQueue.getSpecific(key: PasswordHasher.laneKey) }
        #expect(lane != nil)
        #expect(hasher.derivationQueues.count == hasher.maximumConcurrentDerivations)
    }

    @Test("many concurrent hashes all complete with a concurrency limit of one")
    func concurrency() async throws {
        let hasher = PasswordHasher(parameters: Self.fast, maximumConcurrentDerivations: 1)
        let results = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
            for index in 0..<12 {
                group.addTask {
                    let stored = try await hasher.hash("password number \(index)")
                    let ok = await hasher.verify("password number \(index)", against: stored)
                    let crossed = await hasher.verify("password number \(index + 1)", against: stored)
                    return (index, ok && !crossed)
                }
            }
            var collected: [Int: Bool] = [:]
            for try await (index, ok) in group { collected[index] = ok }
            return collected
        }
        #expect(results.count == 12)
        #expect(results.values.allSatisfy { $0 })
    }

    @Test("the cooperative pool keeps running while a default-cost hash is computed")
    func doesNotBlockCallers() async throws {
        let hasher = PasswordHasher(maximumConcurrentDerivations: 1)
        // Occupy the hasher with several default-cost derivations, then check that a
        // trivial task still gets scheduled promptly on the cooperative pool.
        async let a = hasher.hash("first long-running password")
        async let b = hasher.hash("second long-running password")
        async let c = hasher.hash("third long-running password")
        // Other tasks still run to completion while all three wait for the hasher's queue
        // (a blocked cooperative pool would make this group wait for the hashes).
        let ticks = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<20 { group.addTask { await Task.yield(); return 1 } }
            return await group.reduce(0, +)
        }
        #expect(ticks == 20)
        let hashes = try await [a, b, c]
        #expect(Set(hashes).count == 3)
    }
}
