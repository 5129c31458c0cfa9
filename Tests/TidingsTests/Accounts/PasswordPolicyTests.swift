import Foundation
import Testing
@testable import TidingsCrypto

@Suite("PasswordPolicy")
struct PasswordPolicyTests {
    static let policy = PasswordPolicy(commonPasswords: CommonPasswordList(["password1234", "correcthorsebatterystaple"]))

    // MARK: Length

    @Test("11 characters are too short, 12 are enough")
    func minimumLength() {
        #expect(Self.policy.violations(of: "abcdefghijk", email: nil) == [.tooShort(minimum: 12)])
        #expect(Self.policy.violations(of: "abcdefghijkm", email: nil) == [])
        #expect(Self.policy.violations(of: "", email: nil) == [.tooShort(minimum: 12)])
    }

    @Test("long passwords up to 256 characters are accepted, 257 refused")
    func maximumLength() {
        let longest = String(repeating: "abcdefgh", count: 32)
        #expect(longest.count == 256)
        #expect(Self.policy.violations(of: longest, email: nil) == [])
        #expect(Self.policy.violations(of: longest + "x", email: nil) == [.tooLong(maximum: 256)])
        #expect(throws: PasswordPolicy.Violation.tooLong(maximum: 256)) {
            try Self.policy.validate(longest + "x", email: nil)
        }
    }

    @Test("huge input is refused without being normalised")
    func hugeInput() {
        let huge = String(repeating: "a", count: 1_000_000)
        #expect(Self.policy.violations(of: huge, email: nil) == [.tooLong(maximum: 256)])
    }

    @Test("length counts code points after NFC")
    func unicodeLength() {
        // "é" precomposed and decomposed both count as one.
        let precomposed = String(repeating: "\u{E9}", count: 12)
        let decomposed = String(repeating: "e\u{301}", count: 12)
        #expect(PasswordPolicy.length(of: precomposed) == 12)
        #expect(PasswordPolicy.length(of: decomposed) == 12)
        #expect(Self.policy.violations(of: decomposed, email: nil) == [])
        // 11 decomposed "é" are 22 code points as typed, but only 11 characters.
        #expect(Self.policy.violations(of: String(repeating: "e\u{301}", count: 11), email: nil) == [.tooShort(minimum: 12)])
        // A family emoji is one Character but five code points.
        #expect(PasswordPolicy.length(of: "👨‍👩‍👧") == 5)
        // A ligature is not expanded (NFC, not NFKC).
        #expect(PasswordPolicy.length(of: "ﬃﬃﬃﬃ") == 4)
        // 256 two-byte characters are fine, 257 are not.
        #expect(Self.policy.violations(of: String(repeating: "ж", count: 256), email: nil) == [])
        #expect(Self.policy.violations(of: String(repeating: "ж", count: 257), email: nil) == [.tooLong(maximum: 256)])
        // 256 decomposed characters (512 code points) are 256 characters.
        #expect(Self.policy.violations(of: String(repeating: "e\u{301}", count: 256), email: nil) == [])
    }

    @Test("no composition rules: lowercase letters and spaces only are fine")
    func noCompositionRules() {
        #expect(Self.policy.violations(of: "purple monkey dishwasher", email: nil) == [])
        #expect(Self.policy.violations(of: "aaaaaaaaaaaaaaaa", email: nil) == [])
    }

    // MARK: Common passwords

    @Test("common passwords are refused, ignoring case")
    func commonPasswords() {
        #expect(Self.policy.violations(of: "password1234", email: nil) == [.commonPassword])
        #expect(Self.policy.violations(of: "PassWord1234", email: nil) == [.commonPassword])
        #expect(Self.policy.violations(of: "CorrectHorseBatteryStaple", email: nil) == [.commonPassword])
        #expect(Self.policy.violations(of: "password12345", email: nil) == [])
    }

    @Test("a short common password reports both problems, validate throws the first")
    func shortAndCommon() {
        let policy = PasswordPolicy(commonPasswords: CommonPasswordList(["letmein"]))
        #expect(policy.violations(of: "LetMeIn", email: nil) == [.tooShort(minimum: 12), .commonPassword])
        #expect(throws: PasswordPolicy.Violation.tooShort(minimum: 12)) {
            try policy.validate("LetMeIn", email: nil)
        }
    }

    // MARK: E-mail address

    @Test("the whole e-mail address is refused, ignoring case")
    func containsEmail() {
        #expect(Self.policy.violations(of: "my Alice@Example.com pass", email: "alice@example.com") == [.containsEmailAddress])
        #expect(Self.policy.violations(of: "alice@example.com!!", email: " ALICE@EXAMPLE.COM ") == [.containsEmailAddress])
    }

    @Test("the local part is refused, ignoring case")
    func containsLocalPart() {
        #expect(Self.policy.violations(of: "xx-Alice.Smith-2024", email: "alice.smith@example.com") == [.containsEmailLocalPart])
        #expect(Self.policy.violations(of: "thisisbobs password", email: "bob@example.com") == [.containsEmailLocalPart])
        #expect(throws: PasswordPolicy.Violation.containsEmailLocalPart) {
            try Self.policy.validate("supersecretBOB!!", email: "bob@example.com")
        }
    }

    @Test("the base of a sub-address is refused too")
    func containsSubaddressBase() {
        #expect(Self.policy.violations(of: "carolcarolcarol", email: "carol+news@example.com") == [.containsEmailLocalPart])
    }

    @Test("local parts shorter than three characters are ignored")
    func shortLocalPart() {
        #expect(Self.policy.violations(of: "jo likes long walks", email: "jo@example.com") == [])
        #expect(Self.policy.violations(of: "a long walk on the beach", email: "a@example.com") == [])
        #expect(Self.policy.violations(of: "eve walks a long way", email: "eve@example.com") == [.containsEmailLocalPart])
    }

    @Test("the domain alone is not refused")
    func domainAlone() {
        #expect(Self.policy.violations(of: "example.com rocks hard", email: "zed@example.com") == [])
    }

    @Test("accents match however they were typed")
    func emailNormalization() {
        let decomposedName = "rene\u{301}e"
        #expect(Self.policy.violations(of: "I am \(decomposedName) indeed", email: "ren\u{E9}e@example.com") == [.containsEmailLocalPart])
        #expect(Self.policy.violations(of: "I am REN\u{C9}E indeed", email: "\(decomposedName)@example.com") == [.containsEmailLocalPart])
    }

    // MARK: Good passwords

    @Test("a good passphrase is accepted")
    func goodPassphrase() throws {
        try Self.policy.validate("tangerine orbit whistles calmly", email: "alice@example.com")
        try Self.policy.validate("tangerine orbit whistles calmly", email: nil)
    }

    // MARK: Messages

    @Test("every message is human text that does not echo the password")
    func messages() {
        let password = "Secret-Alice@Example.com-1"
        let all: [PasswordPolicy.Violation] = [
            .tooShort(minimum: 12), .tooLong(maximum: 256), .commonPassword, .containsEmailAddress, .containsEmailLocalPart,
        ]
        for violation in all {
            #expect(!violation.description.isEmpty)
            #expect(!violation.description.contains(password))
        }
        #expect(PasswordPolicy.Violation.tooShort(minimum: 12).description.contains("12"))
        #expect(Set(all.map(\.description)).count == all.count)
        for found in Self.policy.violations(of: password, email: "alice@example.com") {
            #expect(!found.description.lowercased().contains("secret"))
        }
    }
}

@Suite("CommonPasswordList")
struct CommonPasswordListTests {
    static func temporaryFile(_ contents: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("common-\(UUID().uuidString).lst")
        try Data(contents.utf8).write(to: url)
        return url
    }

    @Test("loader skips comment headers and blank lines, handles CRLF, lowercases")
    func loadsFile() throws {
        let url = try Self.temporaryFile("#!comment: a header\n#!comment:\n123456\r\nPassword1234\n\n\nqwertyuiopas\r\n#notacomment\n")
        defer { try? FileManager.default.removeItem(at: url) }
        let list = try CommonPasswordList(contentsOfFile: url.path)
        #expect(list.count == 4)
        #expect(list.contains("password1234"))
        #expect(list.contains("PASSWORD1234"))
        #expect(list.contains("qwertyuiopas"))
        #expect(list.contains("#notacomment"))
        #expect(!list.contains("#!comment: a header"))
        #expect(!list.contains(""))
        #expect(!list.contains("qwertyuiopas\r"))
    }

    @Test("a missing file throws")
    func missingFile() {
        #expect(throws: (any Error).self) {
            _ = try CommonPasswordList(contentsOfFile: "/nonexistent/password.lst")
        }
    }

    @Test("invalid UTF-8 does not stop the load")
    func invalidUTF8() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("latin1-\(UUID().uuidString).lst")
        try Data([0x63, 0x61, 0x66, 0xE9, 0x0A] + Array("goodpassword99\n".utf8)).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let list = try CommonPasswordList(contentsOfFile: url.path)
        #expect(list.count == 2)
        #expect(list.contains("GoodPassword99"))
    }

    @Test("empty list contains nothing")
    func emptyList() {
        #expect(CommonPasswordList.empty.count == 0)
        #expect(!CommonPasswordList.empty.contains("password"))
    }

    @Test("John the Ripper's list (Debian john-data, installed by scripts/test) loads and its entries are refused")
    func johnList() throws {
        try #require(
            FileManager.default.fileExists(atPath: CommonPasswordList.johnTheRipperPath),
            "install Debian's john-data for /usr/share/john/password.lst (scripts/test does)"
        )
        let list = try CommonPasswordList(contentsOfFile: CommonPasswordList.johnTheRipperPath)
        // 3546 entries per its header; a few differ only in case.
        #expect(list.count > 3000)
        #expect(list.contains("123456"))
        #expect(list.contains("Password1"))
        #expect(!list.contains("#!comment: This list has been compiled by Solar Designer of Openwall Project"))

        let policy = PasswordPolicy(commonPasswords: list)
        // The list's only entry of 12 or more characters.
        #expect(policy.violations(of: "winniethepooh", email: nil) == [.commonPassword])
        #expect(policy.violations(of: "WinnieThePooh", email: nil) == [.commonPassword])
        // Shorter entries are refused for length and for being common.
        #expect(policy.violations(of: "password1", email: nil) == [.tooShort(minimum: 12), .commonPassword])
        #expect(policy.violations(of: "tangerine orbit whistles calmly", email: "alice@example.com") == [])
        // Decorated common words are just as guessable.
        #expect(policy.violations(of: "password1234", email: nil) == [.commonPassword])
        #expect(policy.violations(of: "!!dragon2024!!", email: nil) == [.commonPassword])
        #expect(policy.violations(of: "monkeymonkey", email: nil) == [.commonPassword])
        #expect(policy.violations(of: "monkeys wrangle 42 oboes", email: nil) == [])
    }
}
