import Foundation
import Testing
@testable import TidingsDomain

@Suite("EmailAddress")
struct EmailAddressTests {
    // MARK: Normalisation

    @Test func uppercaseAddressIsLowercased() throws {
        let address = try EmailAddress("Ann.Smith@Example.COM")
        #expect(address.value == "ann.smith@example.com")
    }

    @Test func nonASCIIUppercaseIsLowercased() throws {
        let address = try EmailAddress("ÜBER@Bücher.DE")
        #expect(address.value == "über@bücher.de")
    }

    @Test func surroundingWhitespaceIsTrimmed() throws {
        let address = try EmailAddress(" \t ann@example.com \r\n")
        #expect(address.value == "ann@example.com")
    }

    @Test func decomposedCharactersAreComposed() throws {
        let decomposed = try EmailAddress("jose\u{301}@example.com")
        let precomposed = try EmailAddress("jos\u{E9}@example.com")
        #expect(decomposed == precomposed)
        #expect(decomposed.value.unicodeScalars.count == "jos\u{E9}@example.com".unicodeScalars.count)
    }

    @Test func spellingsOfOneMailboxAreOneValue() throws {
        let spellings = ["ann@example.com", "ANN@EXAMPLE.COM", " Ann@Example.com", "\"ann\"@example.com"]
        let addresses = try Set(spellings.map { try EmailAddress($0) })
        #expect(addresses.count == 1)
    }

    @Test func descriptionIsTheNormalisedValue() throws {
        let address = try EmailAddress("Ann@Example.com")
        #expect(address.description == "ann@example.com")
        #expect("\(address)" == "ann@example.com")
    }

    // MARK: Accepted forms

    @Test(arguments: [
        "simple@example.com",
        "very.common@example.com",
        "x@example.com",
        "a@b.co",
        "long.email-address-with-hyphens@and.subdomains.example.com",
        "user.name+tag+sorting@example.com",
        "name/surname@example.com",
        "mailhost!username@example.org",
        "user%example.com@example.org",
        "user-@example.org",
        "!#$%&'*+-/=?^_`{|}~@example.org",
        "1234@example.com",
        "ann@xn--bcher-kva.example",
        "ann@123.example",
        "ann@example.c0m",
        "ann@a-b--c.example",
    ])
    func validAddressIsAccepted(_ raw: String) throws {
        let address = try EmailAddress(raw)
        #expect(address.value == raw)
    }

    @Test(arguments: [
        "ann@bücher.example",
        "ann@例子.广告",
        "ann@παράδειγμα.δοκιμή",
        "ann@डाटा.भारत",
        "ann@пример.рф",
    ])
    func internationalisedDomainIsAccepted(_ raw: String) throws {
        let address = try EmailAddress(raw)
        #expect(address.domain == String(raw.split(separator: "@")[1]))
    }

    @Test(arguments: [
        "用户@例子.广告",
        "δοκιμή@παράδειγμα.δοκιμή",
        "अजय@डाटा.भारत",
        "josé.garcía@example.com",
        "θσερ@εχαμπλε.ψομ",
    ])
    func internationalisedLocalPartIsAccepted(_ raw: String) throws {
        let address = try EmailAddress(raw)
        #expect(address.value == raw.precomposedStringWithCanonicalMapping)
    }

    // MARK: Quoted local parts

    @Test func quotedLocalPartWithSpaceIsAccepted() throws {
        let address = try EmailAddress("\"john doe\"@example.com")
        #expect(address.value == "\"john doe\"@example.com")
        #expect(address.localPart == "\"john doe\"")
        #expect(address.domain == "example.com")
    }

    @Test func quotedLocalPartMayContainAnAt() throws {
        let address = try EmailAddress("\"a@b\"@example.com")
        #expect(address.localPart == "\"a@b\"")
        #expect(address.domain == "example.com")
    }

    @Test func quotedLocalPartMayContainConsecutiveDots() throws {
        let address = try EmailAddress("\"john..doe\"@example.com")
        #expect(address.value == "\"john..doe\"@example.com")
    }

    @Test func unneededQuotesAreRemoved() throws {
        let address = try EmailAddress("\"John.Doe\"@example.com")
        #expect(address.value == "john.doe@example.com")
    }

    @Test func unneededEscapesAreRemoved() throws {
        let address = try EmailAddress(#""a\b c"@example.com"#)
        #expect(address.value == #""ab c"@example.com"#)
    }

    @Test func escapedQuoteAndBackslashStayEscaped() throws {
        let address = try EmailAddress(#""a\"b\\c"@example.com"#)
        #expect(address.value == #""a\"b\\c"@example.com"#)
    }

    // MARK: Rejected forms

    @Test(arguments: [
        ("", "empty"),
        ("   ", "empty"),
        ("plainaddress", "must contain an @"),
        ("@example.com", "before the @ is empty"),
        ("ann@", "domain after the @ is empty"),
        (".ann@example.com", "must not start with a dot"),
        ("ann.@example.com", "must not end with a dot"),
        ("ann..smith@example.com", "two dots in a row"),
        ("ann smith@example.com", "not allowed"),
        ("ann(comment)@example.com", "not allowed"),
        ("a,b@example.com", "not allowed"),
        ("a;b@example.com", "not allowed"),
        ("a:b@example.com", "not allowed"),
        ("a<b>@example.com", "not allowed"),
        ("a[b]@example.com", "not allowed"),
        (#"a\b@example.com"#, "not allowed"),
        ("a\"b@example.com", "not allowed"),
        ("ann\u{200B}@example.com", "not allowed"),
        ("ann\u{00A0}smith@example.com", "not allowed"),
        ("ann\u{7F}@example.com", "not allowed"),
        ("a@b@example.com", "more than one @"),
        ("ann@example", "at least two parts"),
        ("ann@.example.com", "domain must not start with a dot"),
        ("ann@example.com.", "domain must not end with a dot"),
        ("ann@example..com", "domain must not contain two dots in a row"),
        ("ann@-example.com", "hyphen"),
        ("ann@example-.com", "hyphen"),
        ("ann@example.-com", "hyphen"),
        ("ann@exa_mple.com", "only letters, digits, hyphens"),
        ("ann@exa mple.com", "only letters, digits, hyphens"),
        ("ann@exa!mple.com", "only letters, digits, hyphens"),
        ("ann@🙂.example", "only letters, digits, hyphens"),
        ("ann@\u{301}example.com", "combining mark"),
        ("ann@example.\u{301}com", "combining mark"),
        ("ann@[192.0.2.1]", "Domain literals"),
        ("ann@[IPv6:2001:db8::1]", "Domain literals"),
        ("ann@192.0.2.1", "must not be all digits"),
        ("ann@example.123", "must not be all digits"),
        ("\"ann@example.com", "no closing quote"),
        ("\"ann\"smith@example.com", "followed directly by an @"),
        ("\"ann\"", "followed directly by an @"),
        ("\"\"@example.com", "before the @ is empty"),
        ("\"a\u{7}b\"@example.com", "control or invisible"),
        ("\"a\u{200B}b\"@example.com", "control or invisible"),
        ("\"a\\", "backslash"),
        ("\"a\\\u{7}\"@example.com", "backslash"),
    ])
    func invalidAddressIsRejected(_ raw: String, _ messageFragment: String) {
        let error = #expect(throws: DomainError.self) { try EmailAddress(raw) }
        #expect(error?.kind == .invalid)
        #expect(error?.code == "invalid_email")
        #expect(error?.field == "email")
        #expect(error?.message.contains(messageFragment) == true, "\(error?.message ?? "")")
    }

    @Test func errorNamesTheGivenField() {
        let error = #expect(throws: DomainError.self) { try EmailAddress("nope", field: "rcpt") }
        #expect(error?.field == "rcpt")
    }

    @Test(arguments: [
        "jane.doe",
        "jane.doe@",
        "jane.doe@example",
        "jane..doe@example.com",
        "jane.doe@[192.0.2.1]",
        "\"jane.doe@example.com",
        "jane.doe@example.com.",
        String(repeating: "jane.doe", count: 10) + "@example.com",
    ])
    func errorMessageDoesNotRepeatTheAddress(_ raw: String) {
        let error = #expect(throws: DomainError.self) { try EmailAddress(raw) }
        #expect(error?.message.contains("jane") == false)
        #expect(error?.message.contains("doe") == false)
    }

    // MARK: Length limits (RFC 5321, in UTF-8 octets)

    @Test func localPartOf64OctetsIsAccepted() throws {
        let local = String(repeating: "a", count: 64)
        #expect(try EmailAddress(local + "@example.com").localPart == local)
    }

    @Test func localPartLongerThan64OctetsIsRejected() {
        let error = #expect(throws: DomainError.self) {
            try EmailAddress(String(repeating: "a", count: 65) + "@example.com")
        }
        #expect(error?.message.contains("longer than 64 octets") == true)
    }

    @Test func localPartLengthIsCountedInOctetsNotCharacters() throws {
        // "é" is two octets in UTF-8, so 32 of them fill the 64-octet limit.
        _ = try EmailAddress(String(repeating: "é", count: 32) + "@example.com")
        let error = #expect(throws: DomainError.self) {
            try EmailAddress(String(repeating: "é", count: 33) + "@example.com")
        }
        #expect(error?.message.contains("longer than 64 octets") == true)
    }

    @Test func localPartLengthCountsItsQuotes() throws {
        let content = String(repeating: "a", count: 61) + " "
        _ = try EmailAddress("\"\(content)\"@example.com")
        #expect(throws: DomainError.self) { try EmailAddress("\"\(content)a\"@example.com") }
    }

    @Test func domainLabelOf63OctetsIsAccepted() throws {
        let label = String(repeating: "b", count: 63)
        #expect(try EmailAddress("ann@\(label).com").domain == "\(label).com")
    }

    @Test func domainLabelLongerThan63OctetsIsRejected() {
        let error = #expect(throws: DomainError.self) {
            try EmailAddress("ann@\(String(repeating: "b", count: 64)).com")
        }
        #expect(error?.message.contains("at most 63 octets") == true)
    }

    @Test func internationalisedLabelLengthIsCountedInOctets() {
        // "ü" is two octets, so 32 of them make a 64-octet label.
        #expect(throws: DomainError.self) {
            try EmailAddress("ann@\(String(repeating: "ü", count: 32)).de")
        }
    }

    @Test func domainLongerThan255OctetsIsRejected() {
        let domain = Array(repeating: String(repeating: "d", count: 63), count: 4).joined(separator: ".") + ".com"
        let error = #expect(throws: DomainError.self) { try EmailAddress("a@" + domain) }
        #expect(error?.message.contains("domain is longer than 255 octets") == true)
    }

    @Test func addressOf254OctetsIsAccepted() throws {
        let raw = longAddress(totalOctets: 254)
        #expect(raw.utf8.count == 254)
        #expect(try EmailAddress(raw).value == raw)
    }

    @Test func addressLongerThan254OctetsIsRejected() {
        let raw = longAddress(totalOctets: 255)
        let error = #expect(throws: DomainError.self) { try EmailAddress(raw) }
        #expect(error?.message.contains("longer than 254 octets") == true)
    }

    /// 64 octets of local part, then a domain of 63-octet labels padded to the total.
    private func longAddress(totalOctets: Int) -> String {
        let local = String(repeating: "a", count: 64)
        let domainOctets = totalOctets - 65
        let labels = [String(repeating: "b", count: 63), String(repeating: "c", count: 63)]
        let last = String(repeating: "d", count: domainOctets - 128)
        return local + "@" + (labels + [last]).joined(separator: ".")
    }

    // MARK: Parts

    @Test func localPartAndDomainAreSplitAtTheAt() throws {
        let address = try EmailAddress("Ann.Smith+news@Mail.Example.com")
        #expect(address.localPart == "ann.smith+news")
        #expect(address.domain == "mail.example.com")
    }

    @Test func partsAreFoundEvenWhenTheAtJoinsACharacterBeforeIt() throws {
        // U+0D4E forms one grapheme cluster with the character after it, here the `@`.
        let address = try EmailAddress("a\u{0D4E}@example.com")
        #expect(address.localPart == "a\u{0D4E}")
        #expect(address.domain == "example.com")
    }

    // MARK: Codable

    @Test func encodesAsAPlainString() throws {
        let data = try JSONEncoder().encode(["to": try EmailAddress("Ann@Example.com")])
        #expect(String(decoding: data, as: UTF8.self) == #"{"to":"ann@example.com"}"#)
    }

    @Test func decodingNormalises() throws {
        let address = try JSONDecoder().decode(EmailAddress.self, from: Data(#""ANN@example.com""#.utf8))
        #expect(address.value == "ann@example.com")
    }

    @Test func decodingAnInvalidAddressFails() {
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(EmailAddress.self, from: Data(#""not-an-address""#.utf8))
        }
    }

    @Test("The ASCII fast path normalises exactly as the full Unicode path does")
    func asciiFastPathAgrees() {
        let inputs = [
            "  Ada@Example.COM\t", "\r\nbob@x.test\n", "\u{0B}\u{0C}MiXeD.Case+Tag@Sub.Domain.ORG ", "", " \t ",
            "a\u{01}b@c.d", "QUOTED\"@X.Y", "ZZ@ZZ", "@", "user@[127.0.0.1]",
        ]
        var generator = SystemRandomNumberGenerator()
        let random = (0..<300).map { _ in
            String(decoding: (0..<Int.random(in: 0...24, using: &generator)).map { _ in UInt8.random(in: 0...127, using: &generator) }, as: UTF8.self)
        }
        for raw in inputs + random {
            let full = raw.trimmingCharacters(in: .whitespacesAndNewlines).lowercased().precomposedStringWithCanonicalMapping
            #expect(EmailAddress.normalised(raw) == full, "\(Array(raw.utf8))")
        }
        #expect(EmailAddress.normalised(" Ä@Ü.de ") == "ä@ü.de", "non-ASCII takes the full path")
    }
}
