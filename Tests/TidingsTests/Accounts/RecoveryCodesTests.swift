import Crypto
import Foundation
import Testing
@testable import TidingsCrypto

@Suite("RecoveryCodes")
struct RecoveryCodesTests {
    static let codes = RecoveryCodes(key: SymmetricKey(size: .bits256))

    @Test("a batch is ten distinct codes shaped xxxxx-xxxxx from the unambiguous alphabet")
    func generate() {
        let batch = RecoveryCodes.generate()
        #expect(batch.count == 10)
        #expect(Set(batch).count == 10)
        let allowed = Set(RecoveryCodes.alphabet)
        for code in batch {
            #expect(code.count == 11)
            let parts = code.split(separator: "-", omittingEmptySubsequences: false)
            #expect(parts.count == 2)
            #expect(parts.allSatisfy { $0.count == 5 })
            #expect(parts.joined().allSatisfy { allowed.contains($0) })
        }
    }

    @Test("the alphabet has 31 symbols and none of 0, O, o, 1, l, I, i")
    func alphabet() {
        let alphabet = RecoveryCodes.alphabet
        #expect(alphabet.count == 31)
        #expect(Set(alphabet).count == 31)
        for banned in "0Oo1lIi" {
            #expect(!alphabet.contains(banned))
            #expect(!alphabet.uppercased().contains(banned))
        }
    }

    @Test("symbols are spread over the whole alphabet")
    func distribution() {
        var counts: [Character: Int] = [:]
        for code in RecoveryCodes.generate(count: 300) {
            for symbol in code where symbol != "-" { counts[symbol, default: 0] += 1 }
        }
        // 3000 symbols, about 97 of each; all 31 appear and none is wildly off.
        #expect(counts.count == 31)
        #expect(counts.values.allSatisfy { (40...180).contains($0) })
    }

    @Test("each code matches its own stored form only")
    func matchesOwnCode() throws {
        let batch = RecoveryCodes.generate()
        let stored = try batch.map { try #require(Self.codes.storedForm(of: $0)) }
        for (index, code) in batch.enumerated() {
            #expect(Self.codes.firstMatch(code, in: stored) == index)
        }
    }

    @Test("input matches without the dash, in upper case, with spaces")
    func lenientInput() throws {
        let code = "abcde-fghjk"
        let stored = [try #require(Self.codes.storedForm(of: code))]
        for typed in ["abcde-fghjk", "abcdefghjk", "ABCDE-FGHJK", "AbCdEfGhJk", " abcde fghjk ", "abc-de-fg-hjk", "abcde\u{2D}fghjk\n"] {
            #expect(Self.codes.firstMatch(typed, in: stored) == 0, "\(typed)")
        }
    }

    @Test("wrong or malformed input matches nothing", arguments: [
        "", "abcde-fghjm", "abcde-fghj", "abcde-fghjkk", "abcde_fghjk", "abcde-fghj0", "abcde-fghj1",
        "abcde-fghjl", "abcde-fghjI", "abcde-fghjO", "ábcde-fghjk", "abcde–fghjk",
    ])
    func rejectsWrong(input: String) throws {
        let stored = [try #require(Self.codes.storedForm(of: "abcde-fghjk"))]
        #expect(Self.codes.firstMatch(input, in: stored) == nil)
    }

    @Test("stored forms reveal nothing and are salted")
    func storedForm() throws {
        let first = try #require(Self.codes.storedForm(of: "abcde-fghjk"))
        let second = try #require(Self.codes.storedForm(of: "ABCDEFGHJK"))
        #expect(first != second, "a fresh salt every time")
        #expect(!first.lowercased().contains("abcde"))
        #expect(first.hasPrefix("v1$"))
        let fields = first.split(separator: "$")
        #expect(fields.count == 3)
        #expect(fields[1].count == 32)
        #expect(fields[2].count == 64)
        #expect(Self.codes.firstMatch("abcde-fghjk", in: [first, second]) == 0)
    }

    @Test("a code is not a stored form unless it is a code")
    func storedFormRejectsNonCodes() {
        #expect(Self.codes.storedForm(of: "hello") == nil)
        #expect(Self.codes.storedForm(of: "00000-00000") == nil)
    }

    @Test("stored forms made under another key do not match")
    func otherKey() throws {
        let other = RecoveryCodes(key: SymmetricKey(size: .bits256))
        let stored = [try #require(other.storedForm(of: "abcde-fghjk"))]
        #expect(Self.codes.firstMatch("abcde-fghjk", in: stored) == nil)
    }

    @Test("used codes are gone once their stored form is removed")
    func singleUse() throws {
        let batch = RecoveryCodes.generate()
        var stored = try batch.map { try #require(Self.codes.storedForm(of: $0)) }
        let index = try #require(Self.codes.firstMatch(batch[3], in: stored))
        stored.remove(at: index)
        #expect(Self.codes.firstMatch(batch[3], in: stored) == nil)
        #expect(Self.codes.firstMatch(batch[4], in: stored) == 3)
    }

    @Test("unreadable stored entries are skipped, not fatal")
    func damagedStoredForms() throws {
        let good = try #require(Self.codes.storedForm(of: "abcde-fghjk"))
        let damaged = [
            "", "v1", "v1$$", "v2$" + String(repeating: "0", count: 32) + "$" + String(repeating: "0", count: 64),
            "v1$zz$zz", "v1$" + String(repeating: "A", count: 32) + "$" + String(repeating: "0", count: 64),
            "v1$" + String(repeating: "0", count: 31) + "$" + String(repeating: "0", count: 64),
            String(good.dropLast()), good + "0",
        ]
        #expect(Self.codes.firstMatch("abcde-fghjk", in: damaged) == nil)
        #expect(Self.codes.firstMatch("abcde-fghjk", in: damaged + [good]) == damaged.count)
    }

    @Test("normalize")
    func normalize() {
        #expect(RecoveryCodes.normalize("ABCDE-FGHJK") == "abcdefghjk")
        #expect(RecoveryCodes.normalize("abcde") == nil)
        #expect(RecoveryCodes.normalize(String(repeating: "a", count: 1000)) == nil)
    }
}
