import Foundation
import Testing
@testable import TidingsCrypto

@Suite("Base32")
struct Base32Tests {
    /// RFC 4648 §10 test vectors, with the padding removed as this encoder writes them.
    static let vectors: [(String, String)] = [
        ("", ""),
        ("f", "MY"),
        ("fo", "MZXQ"),
        ("foo", "MZXW6"),
        ("foob", "MZXW6YQ"),
        ("fooba", "MZXW6YTB"),
        ("foobar", "MZXW6YTBOI"),
    ]

    @Test("RFC 4648 vectors encode without padding", arguments: vectors)
    func encodesRFCVectors(plain: String, encoded: String) {
        #expect(Base32.encode(Array(plain.utf8)) == encoded)
    }

    @Test("RFC 4648 vectors decode, padded as in the RFC or not", arguments: vectors)
    func decodesRFCVectors(plain: String, encoded: String) {
        #expect(Base32.decode(encoded) == Data(plain.utf8))
        let padded = encoded + String(repeating: "=", count: (8 - encoded.count % 8) % 8)
        #expect(Base32.decode(padded) == Data(plain.utf8))
    }

    @Test("decoding tolerates lowercase, spaces and line breaks")
    func lenientInput() {
        #expect(Base32.decode("mzxw 6ytb oi") == Data("foobar".utf8))
        #expect(Base32.decode("MzXw6\nYtBoI==\r\n") == Data("foobar".utf8))
        #expect(Base32.decode("\tMZXW6YTBOI ") == Data("foobar".utf8))
    }

    @Test("decoding refuses what is not base32")
    func rejectsInvalid() {
        #expect(Base32.decode("MZXW6YTB0I") == nil, "0 is not in the alphabet")
        #expect(Base32.decode("MZXW6YTB1I") == nil, "1 is not in the alphabet")
        #expect(Base32.decode("MZXW8") == nil, "8 is not in the alphabet")
        #expect(Base32.decode("MZ=XW") == nil, "data after padding")
        #expect(Base32.decode("M") == nil, "one symbol encodes no byte")
        #expect(Base32.decode("MZX") == nil, "three symbols are not a valid length")
        #expect(Base32.decode("MZXW6Y") == nil, "six symbols are not a valid length")
        #expect(Base32.decode("MZ-XW") == nil, "dashes are not whitespace")
        #expect(Base32.decode("MZXW6YTBOé") == nil)
    }

    @Test("non-zero unused bits in the last symbol are refused")
    func rejectsNonCanonicalTail() {
        // "MY" is "f" (0x66): 01100 110|00. "MZ" sets one of the two unused bits.
        #expect(Base32.decode("MY") == Data([0x66]))
        #expect(Base32.decode("MZ") == nil)
    }

    @Test("random byte strings round-trip")
    func roundTrip() {
        for length in 0..<64 {
            let bytes = SecureRandom.bytes(count: length)
            let text = Base32.encode(bytes)
            #expect(!text.contains("="))
            #expect(Base32.decode(text) == Data(bytes))
            #expect(Base32.decode(text.lowercased()) == Data(bytes))
        }
    }
}
