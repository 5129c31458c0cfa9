import Crypto
import Foundation
import Testing
@testable import TidingsCrypto

@Suite("TOTP")
struct TOTPTests {
    /// The RFC 4226 / RFC 6238 test secret: ASCII "12345678901234567890".
    static let rfcSecret = Data("12345678901234567890".utf8)
    static var rfcKey: SymmetricKey { SymmetricKey(data: rfcSecret) }

    /// RFC 4226 Appendix D: counter, HMAC-SHA-1, truncated value, 6-digit HOTP.
    static let hotpVectors: [(UInt64, String, UInt32, String)] = [
        (0, "cc93cf18508d94934c64b65d8ba7667fb7cde4b0", 1_284_755_224, "755224"),
        (1, "75a48a19d4cbe100644e8ac1397eea747a2d33ab", 1_094_287_082, "287082"),
        (2, "0bacb7fa082fef30782211938bc1c5e70416ff44", 137_359_152, "359152"),
        (3, "66c28227d03a2d5529262ff016a1e6ef76557ece", 1_726_969_429, "969429"),
        (4, "a904c900a64b35909874b33e61c5938a8e15ed1c", 1_640_338_314, "338314"),
        (5, "a37e783d7b7233c083d4f62926c7a25f238d0316", 868_254_676, "254676"),
        (6, "bc9cd28561042c83f219324d3c607256c03272ae", 1_918_287_922, "287922"),
        (7, "a4fb960c0bc06e1eabb804e5b397cdc4b45596fa", 82_162_583, "162583"),
        (8, "1b3c89f65e6c9e883012052823443f048b4332db", 673_399_871, "399871"),
        (9, "1637409809a679dc698207310c8c7fc07290d9e5", 645_520_489, "520489"),
    ]

    /// RFC 6238 Appendix B, SHA-1 rows: Unix time, time-step counter, 8-digit TOTP.
    static let totpVectors: [(Int64, Int64, String)] = [
        (59, 0x1, "94287082"),
        (1_111_111_109, 0x23523EC, "07081804"),
        (1_111_111_111, 0x23523ED, "14050471"),
        (1_234_567_890, 0x273EF07, "89005924"),
        (2_000_000_000, 0x3F940AA, "69279037"),
        (20_000_000_000, 0x27BC86AA, "65353130"),
    ]

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

    static func totp() -> TOTP { TOTP(secret: rfcSecret)! }

    // MARK: RFC vectors

    @Test("RFC 4226 Appendix D: HMAC, truncation and HOTP values", arguments: hotpVectors)
    func hotpVector(counter: UInt64, hmac: String, truncated: UInt32, code: String) {
        var counterBytes: [UInt8] = []
        for shift in stride(from: 56, through: 0, by: -8) { counterBytes.append(UInt8(truncatingIfNeeded: counter >> UInt64(shift))) }
        let mac = Array(HMAC<Insecure.SHA1>.authenticationCode(for: counterBytes, using: Self.rfcKey))
        #expect(mac == Self.hex(hmac))
        #expect(TOTP.dynamicTruncation(mac) == truncated)
        #expect(String(decoding: TOTP.hotp(key: Self.rfcKey, counter: counter, digits: 6), as: UTF8.self) == code)
        #expect(Self.totp().code(forStep: Int64(counter)) == code)
    }

    @Test("RFC 6238 Appendix B: SHA-1, 8 digits", arguments: totpVectors)
    func totpVector(unixTime: Int64, step: Int64, code: String) {
        let date = Date(timeIntervalSince1970: TimeInterval(unixTime))
        #expect(TOTP.timeStep(for: date) == step)
        #expect(String(decoding: TOTP.hotp(key: Self.rfcKey, counter: UInt64(step), digits: 8), as: UTF8.self) == code)
        // The 6-digit code apps show is the last six digits of the same number.
        #expect(Self.totp().code(at: date) == String(code.suffix(6)))
    }

    @Test("codes keep their leading zeros")
    func leadingZeros() {
        // RFC 6238 vector "07081804" at 1111111109 s: the 8-digit value begins with 0.
        #expect(String(decoding: TOTP.hotp(key: Self.rfcKey, counter: 0x23523EC, digits: 8), as: UTF8.self).count == 8)
        let totp = Self.totp()
        for step in Int64(0)..<2000 {
            #expect(totp.code(forStep: step).utf8.count == 6)
        }
    }

    // MARK: Secrets

    @Test("generated secrets are 160 bits and differ")
    func generatedSecrets() {
        let first = TOTP.generateSecret()
        let second = TOTP.generateSecret()
        #expect(first.count == 20)
        #expect(first != second)
        #expect(TOTP(secret: first) != nil)
    }

    @Test("secrets shorter than 128 bits are refused")
    func shortSecrets() {
        #expect(TOTP(secret: Data(repeating: 7, count: 15)) == nil)
        #expect(TOTP(secret: Data(repeating: 7, count: 16)) != nil)
        #expect(TOTP(base32Secret: "MZXW6YTBOI") == nil)
        #expect(TOTP(base32Secret: "not base32!") == nil)
    }

    @Test("base32 secret round-trips and is accepted as typed")
    func base32Secret() throws {
        let totp = Self.totp()
        // RFC 4648 base32 of "12345678901234567890".
        #expect(totp.base32Secret == "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
        let typed = try #require(TOTP(base32Secret: "gezd gnbv gy3t qojq gezd gnbv gy3t qojq"))
        #expect(typed.secret == Self.rfcSecret)
        #expect(typed.code(forStep: 1) == "287082")
    }

    @Test("descriptions never show the secret")
    func redacted() {
        let totp = Self.totp()
        #expect(!"\(totp)".contains(totp.base32Secret))
        #expect(!String(reflecting: totp).contains(totp.base32Secret))
    }

    // MARK: Provisioning URI

    @Test("provisioning URI has the key URI format")
    func provisioningURI() {
        let uri = Self.totp().provisioningURI(issuer: "Tidings", accountName: "alice@example.com")
        #expect(uri == "otpauth://totp/Tidings:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Tidings&algorithm=SHA1&digits=6&period=30")
    }

    @Test("label and issuer are percent-encoded part by part")
    func provisioningURIEncoding() throws {
        let uri = Self.totp().provisioningURI(issuer: "Acme & Co: Mail", accountName: "bob+x y@exämple.com")
        #expect(uri.hasPrefix("otpauth://totp/Acme%20%26%20Co%3A%20Mail:bob%2Bx%20y@ex%C3%A4mple.com?secret="))
        #expect(uri.contains("&issuer=Acme%20%26%20Co%3A%20Mail&algorithm=SHA1&digits=6&period=30"))
        // Exactly one unescaped ':' in the label, so issuer and account split unambiguously.
        let label = try #require(uri.split(separator: "?").first).dropFirst("otpauth://totp/".count)
        #expect(label.filter { $0 == ":" }.count == 1)
        // Foundation can parse it back into the original parts.
        let components = try #require(URLComponents(string: uri))
        #expect(components.scheme == "otpauth")
        #expect(components.host == "totp")
        #expect(components.path == "/Acme & Co: Mail:bob+x y@exämple.com")
        let items = Dictionary(uniqueKeysWithValues: (components.queryItems ?? []).map { ($0.name, $0.value ?? "") })
        #expect(items["issuer"] == "Acme & Co: Mail")
        #expect(items["secret"] == "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
        #expect(items["algorithm"] == "SHA1")
        #expect(items["digits"] == "6")
        #expect(items["period"] == "30")
    }

    @Test("an empty issuer leaves only the account in the label")
    func provisioningURIWithoutIssuer() {
        let uri = Self.totp().provisioningURI(issuer: "", accountName: "alice@example.com")
        #expect(uri.hasPrefix("otpauth://totp/alice@example.com?secret="))
        #expect(!uri.contains("issuer="))
    }

    // MARK: Verification

    /// A moment in the middle of step 1_000_000 (30_000_000 s to 30_000_029 s).
    static let now = Date(timeIntervalSince1970: 30_000_015)
    static let currentStep: Int64 = 1_000_000

    @Test("the current code verifies and returns its step")
    func verifiesCurrent() {
        let totp = Self.totp()
        let code = totp.code(at: Self.now)!
        #expect(totp.verify(code, at: Self.now, lastUsedStep: nil) == Self.currentStep)
    }

    @Test("codes one step either side are accepted", arguments: [Int64(-1), 1])
    func acceptsOneStepDrift(offset: Int64) {
        let totp = Self.totp()
        let code = totp.code(forStep: Self.currentStep + offset)
        #expect(totp.verify(code, at: Self.now, lastUsedStep: nil) == Self.currentStep + offset)
    }

    @Test("codes two or more steps away are refused", arguments: [Int64(-3), -2, 2, 3])
    func rejectsLargerDrift(offset: Int64) {
        let totp = Self.totp()
        let code = totp.code(forStep: Self.currentStep + offset)
        // Guard against the one-in-a-million case of the same digits inside the window.
        let window = (-1...1).map { totp.code(forStep: Self.currentStep + Int64($0)) }
        #expect(!window.contains(code))
        #expect(totp.verify(code, at: Self.now, lastUsedStep: nil) == nil)
    }

    @Test("step boundaries: the first and last second of a step")
    func stepBoundaries() {
        let totp = Self.totp()
        let code = totp.code(forStep: Self.currentStep)
        #expect(totp.verify(code, at: Date(timeIntervalSince1970: 30_000_000), lastUsedStep: nil) == Self.currentStep)
        #expect(totp.verify(code, at: Date(timeIntervalSince1970: 30_000_029.999), lastUsedStep: nil) == Self.currentStep)
        // Still accepted one step later (drift), but not two.
        #expect(totp.verify(code, at: Date(timeIntervalSince1970: 30_000_059), lastUsedStep: nil) == Self.currentStep)
        #expect(totp.verify(code, at: Date(timeIntervalSince1970: 30_000_060), lastUsedStep: nil) == nil)
    }

    @Test("a used code is never accepted again")
    func rejectsReplay() throws {
        let totp = Self.totp()
        let code = try #require(totp.code(at: Self.now))
        let used = try #require(totp.verify(code, at: Self.now, lastUsedStep: nil))
        // Same code, same moment.
        #expect(totp.verify(code, at: Self.now, lastUsedStep: used) == nil)
        // Same code, replayed 30 s later while it would still be inside the drift window.
        #expect(totp.verify(code, at: Self.now.addingTimeInterval(30), lastUsedStep: used) == nil)
    }

    @Test("codes of earlier steps are refused after a later one was used")
    func rejectsEarlierSteps() {
        let totp = Self.totp()
        let previous = totp.code(forStep: Self.currentStep - 1)
        let current = totp.code(forStep: Self.currentStep)
        let next = totp.code(forStep: Self.currentStep + 1)
        // A code from the next step (fast clock) was used: the current and previous ones are dead.
        #expect(totp.verify(previous, at: Self.now, lastUsedStep: Self.currentStep + 1) == nil)
        #expect(totp.verify(current, at: Self.now, lastUsedStep: Self.currentStep + 1) == nil)
        #expect(totp.verify(next, at: Self.now, lastUsedStep: Self.currentStep + 1) == nil)
        // After the previous step was used, the current and next ones still work.
        #expect(totp.verify(current, at: Self.now, lastUsedStep: Self.currentStep - 1) == Self.currentStep)
        #expect(totp.verify(next, at: Self.now, lastUsedStep: Self.currentStep - 1) == Self.currentStep + 1)
    }

    @Test("anything but exactly six ASCII digits is refused", arguments: [
        "", "12345", "1234567", "12345a", " 123456", "123456 ", "123 456", "12-3456",
        "١٢٣٤٥٦", "１２３４５６", "+12345", "-12345", "12345\u{0}",
    ])
    func rejectsMalformed(code: String) {
        #expect(Self.totp().verify(code, at: Self.now, lastUsedStep: nil) == nil)
    }

    @Test("a wrong code is refused")
    func rejectsWrongCode() {
        let totp = Self.totp()
        let window = Set((-1...1).map { totp.code(forStep: Self.currentStep + Int64($0)) })
        var wrong = 0
        for candidate in ["000000", "123456", "999999", "424242"] where !window.contains(candidate) {
            #expect(totp.verify(candidate, at: Self.now, lastUsedStep: nil) == nil)
            wrong += 1
        }
        #expect(wrong >= 3)
    }

    @Test("another secret's code is refused")
    func rejectsOtherSecret() {
        let mine = TOTP(secret: TOTP.generateSecret())!
        let theirs = TOTP(secret: TOTP.generateSecret())!
        let code = theirs.code(at: Self.now)!
        let window = Set((-1...1).map { mine.code(forStep: Self.currentStep + Int64($0)) })
        if !window.contains(code) {
            #expect(mine.verify(code, at: Self.now, lastUsedStep: nil) == nil)
        }
    }

    @Test("dates before the epoch have no step and verify nothing")
    func preEpoch() {
        let totp = Self.totp()
        let before = Date(timeIntervalSince1970: -1)
        #expect(TOTP.timeStep(for: before) == nil)
        #expect(totp.code(at: before) == nil)
        #expect(totp.verify("755224", at: before, lastUsedStep: nil) == nil)
        // At the epoch, step 0 (and step 1 as drift) verify; no negative step is tried.
        #expect(totp.verify("755224", at: Date(timeIntervalSince1970: 0), lastUsedStep: nil) == 0)
    }
}
