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
}
