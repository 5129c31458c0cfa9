import Crypto
import Foundation
import Testing
@testable import TidingsCrypto

@Suite("Keys and identifiers")
struct CryptoTests {
    @Test("A generated API key has the tdg_ prefix, 256 bits of randomness and a valid checksum")
    func generatedKeyParses() {
        let token = APIKeyToken.generate()
        #expect(token.secret.hasPrefix("tdg_"))
        #expect(token.secret.count == APIKeyToken.length)
        #expect(APIKeyToken(parsing: token.secret) == token)
        #expect(!token.description.contains(token.secret.dropFirst(10)), "printing a token never shows the secret")
        #expect(APIKeyToken.generate() != token)
    }

    @Test("Any single-character typo in a key fails the checksum")
    func typoIsRejected() {
        let secret = Array(APIKeyToken.generate().secret)
        for index in 4..<secret.count {
            var typo = secret
            typo[index] = typo[index] == "a" ? "b" : "a"
            #expect(APIKeyToken(parsing: String(typo)) == nil, "typo at \(index) accepted")
        }
        #expect(APIKeyToken(parsing: "tdg_short") == nil)
        #expect(APIKeyToken(parsing: "xyz_" + String(secret.dropFirst(4))) == nil)
    }

    @Test("Keyed hashes depend on the server key")
    func hashesDependOnKey() {
        let first = SecretHasher(key: SymmetricKey(size: .bits256))
        let second = SecretHasher(key: SymmetricKey(size: .bits256))
        #expect(first.hash("tdg_x") == first.hash("tdg_x"))
        #expect(first.hash("tdg_x") != second.hash("tdg_x"))
        #expect(first.hash("tdg_x").count == 64)
    }

    @Test("Identifiers sort in creation order and carry their type prefix")
    func identifiersSortByTime() {
        let earlier = Identifier.make("ct", at: Date(timeIntervalSince1970: 1_800_000_000))
        let later = Identifier.make("ct", at: Date(timeIntervalSince1970: 1_800_000_000.002))
        #expect(earlier.hasPrefix("ct_") && earlier.count == 29)
        #expect(earlier < later)
        #expect(Set((0..<1000).map { _ in Identifier.make("ev") }).count == 1000)
    }

    @Test("Buffered randomness never hands out the same bytes twice, across refills and threads")
    func bufferedRandom() async {
        // 12-byte values, as nonces are: several refills of the 4 KiB buffer, from many tasks at once.
        let values = await withTaskGroup(of: [[UInt8]].self) { group in
            for _ in 0..<8 { group.addTask { (0..<2000).map { _ in BufferedRandom.bytes(12) } } }
            return await group.reduce(into: []) { $0 += $1 }
        }
        #expect(values.count == 16000)
        #expect(Set(values).count == values.count)
        // Every byte value turns up, each about as often as the others (192,000 bytes: 750 each on average).
        var counts = [Int](repeating: 0, count: 256)
        for value in values { for byte in value { counts[Int(byte)] += 1 } }
        #expect(counts.min()! > 550 && counts.max()! < 950, "\(counts.min()!) … \(counts.max()!)")
        var generator = BufferedRandom()
        #expect(Set((0..<1000).map { _ in generator.next() as UInt64 }).count == 1000)
    }

    @Test("Sealed values of the same text under the same key differ (a fresh nonce each time) and open again")
    func sealingNonces() throws {
        let key = DataKey(id: "dk_test", key: SymmetricKeyMaterial.random())
        let context = SealContext(workspaceId: "ws_test", table: "contacts", column: "email", rowId: "ct_1")
        let sealed = try (0..<500).map { _ in try Sealer.seal(Data("ann@example.com".utf8), with: key, context: context) }
        #expect(Set(sealed).count == 500)
        // The nonce sits after the version, the key id's length and the key id.
        let nonces = sealed.map { $0.dropFirst(2 + "dk_test".utf8.count).prefix(12) }
        #expect(Set(nonces.map { Array($0) }).count == 500)
        for value in sealed.prefix(3) {
            let opened = try Sealer.open(value, with: key, context: context)
            #expect(String(decoding: opened, as: UTF8.self) == "ann@example.com")
        }
    }
}
