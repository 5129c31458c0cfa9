import Foundation
import Testing
@testable import TidingsDomain

@Suite("JSON reading")
struct JSONValueReadingTests {
    @Test("Valid JSON reads the same as Foundation's decoder reads it", arguments: [
        #"{"email": "a@b.test", "n": 42, "x": -1.5e3, "ok": true, "no": false, "none": null}"#,
        #"  [1, [2, [3, {}]], "", "\"q\" \\ \/ \b\f\n\r\t", "\u00e9\u2713\ud834\udd1e"]  "#,
        #"{"nested": {"a": [{"b": {"c": [0, 0.5, 1e-7, 123456789012]}}]}}"#,
        #""just a string""#,
        "3.25",
        "{\"raw\": \"ünïcødé ✓\"}",
    ])
    func validJSONMatchesFoundation(text: String) throws {
        let ours = try JSONValue.parse(Array(text.utf8))
        let theirs = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        #expect(ours == theirs)
    }

    @Test("Invalid JSON is refused with the offset of the problem", arguments: [
        "", "{", "{\"a\" 1}", "{\"a\": 1,}", "[1, 2,]", "[01]", "{'a': 1}", "tru", "nul", "1.", "-", "1e",
        "\"unterminated", "\"bad \\x escape\"", "\"\\ud800 lone\"", "\"\\udc00\"", "{\"a\": 1} trailing", "// c\n{}",
        "\"tab\tinside\"", "NaN", "Infinity", "1e400", #"{"dup": 1, "dup": 2}"#,
    ])
    func invalidJSONIsRefused(text: String) {
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(Array(text.utf8)) }
    }

    @Test("Invalid UTF-8 inside a string is refused")
    func invalidUTF8IsRefused() {
        let bytes: [UInt8] = Array("{\"a\": \"".utf8) + [0xC3, 0x28] + Array("\"}".utf8)
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(bytes) }
    }

    @Test("Nesting beyond 64 levels is refused, however deep the input goes")
    func deepNestingIsRefused() throws {
        #expect(try JSONValue.parse(Array((String(repeating: "[", count: 63) + String(repeating: "]", count: 63)).utf8)) != .null)
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(Array(String(repeating: "[", count: 65).utf8)) }
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse([UInt8](repeating: UInt8(ascii: "["), count: 1_000_000)) }
    }
}
