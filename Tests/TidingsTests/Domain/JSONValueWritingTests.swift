import Foundation
import Testing
@testable import TidingsDomain

@Suite("JSON writing")
struct JSONValueWritingTests {
    @Test("Strings are escaped so any text round-trips through a JSON parser")
    func stringsRoundTrip() throws {
        let samples = ["plain", "quote \" and backslash \\", "line\nfeed\r\ttab", "control \u{1}\u{1f}", "ünïcødé ✓ 𝄞", "slash /", ""]
        for sample in samples {
            let written = JSONValue.string(sample).serialized
            let parsed = try JSONDecoder().decode(String.self, from: Data(written))
            #expect(parsed == sample)
        }
    }

    @Test("Objects are written with sorted keys; integral numbers without a fraction")
    func objectsAndNumbers() {
        let value = JSONValue.object(["b": .number(2), "a": .array([.number(1.5), .bool(true), .null]), "c": .number(-0.25)])
        #expect(value.serializedString == #"{"a":[1.5,true,null],"b":2,"c":-0.25}"#)
        #expect(JSONValue.number(1e300).serializedString == "1e+300")
    }

    @Test("Nested values read back equal to what was written")
    func nestedRoundTrip() throws {
        let value = JSONValue.object([
            "name": .string("Ada \"the\" first"), "tags": .array([.string("x"), .number(3)]),
            "nested": .object(["ok": .bool(false), "none": .null]),
        ])
        #expect(try JSONDecoder().decode(JSONValue.self, from: Data(value.serialized)) == value)
    }
}
