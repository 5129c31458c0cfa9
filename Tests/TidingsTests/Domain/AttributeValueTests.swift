import Testing
@testable import TidingsDomain

@Suite("AttributeValue")
struct AttributeValueTests {
    // MARK: From JSON

    @Test func jsonNullMeansRemoval() throws {
        #expect(try AttributeValue(json: .null, field: "plan") == nil)
    }

    @Test func jsonBooleanIsBoolean() throws {
        #expect(try AttributeValue(json: .bool(true), field: "vip") == .boolean(true))
        #expect(try AttributeValue(json: .bool(false), field: "vip") == .boolean(false))
    }

    @Test func jsonNumberIsNumber() throws {
        #expect(try AttributeValue(json: .number(42), field: "age") == .number(42))
        #expect(try AttributeValue(json: .number(-0.25), field: "score") == .number(-0.25))
    }

    @Test(arguments: [Double.infinity, -Double.infinity, Double.nan])
    func nonFiniteNumberIsRejected(_ value: Double) {
        let error = #expect(throws: DomainError.self) { try AttributeValue(json: .number(value), field: "score") }
        #expect(error?.code == "invalid_attribute_value")
        #expect(error?.field == "score")
    }

    @Test func jsonStringIsString() throws {
        #expect(try AttributeValue(json: .string("pro"), field: "plan") == .string("pro"))
        #expect(try AttributeValue(json: .string(""), field: "plan") == .string(""))
    }

    @Test func jsonStringThatIsADateIsADate() throws {
        let value = try AttributeValue(json: .string("2024-02-29T10:00:00.5+02:00"), field: "trial_ends")
        #expect(value == .date("2024-02-29T08:00:00.500Z"))
        #expect(value?.kind == .date)
    }

    @Test(arguments: [
        (JSONValue.array([.string("a")]), "array"),
        (JSONValue.object(["a": .number(1)]), "object"),
    ])
    func arrayOrObjectIsRejected(_ json: JSONValue, _ typeName: String) {
        let error = #expect(throws: DomainError.self) { try AttributeValue(json: json, field: "tags") }
        #expect(error?.kind == .invalid)
        #expect(error?.code == "unsupported_attribute_type")
        #expect(error?.field == "tags")
        #expect(error?.message == "Attribute value must be a string, number, boolean, date or null; got \(typeName).")
    }

    // MARK: String length

    @Test func stringOfMaxBytesIsAccepted() throws {
        let text = String(repeating: "x", count: AttributeValue.maxStringBytes)
        #expect(try AttributeValue(json: .string(text), field: "bio") == .string(text))
    }

    @Test func stringLongerThanMaxBytesIsRejected() {
        let text = String(repeating: "x", count: AttributeValue.maxStringBytes + 1)
        let error = #expect(throws: DomainError.self) { try AttributeValue(json: .string(text), field: "bio") }
        #expect(error?.kind == .invalid)
        #expect(error?.code == "attribute_value_too_long")
        #expect(error?.field == "bio")
    }

    @Test func stringLengthIsCountedInUTF8Bytes() {
        // 1,025 characters, but 2,050 bytes.
        let text = String(repeating: "é", count: 1025)
        #expect(throws: DomainError.self) { try AttributeValue(json: .string(text), field: "bio") }
    }

    @Test func longStringFromCSVIsRejected() {
        let text = String(repeating: "x", count: AttributeValue.maxStringBytes + 1)
        let error = #expect(throws: DomainError.self) { try AttributeValue(text: text, as: .string, field: "bio") }
        #expect(error?.code == "attribute_value_too_long")
    }

    // MARK: Dates

    @Test(arguments: [
        ("2024-02-29", "2024-02-29"),
        ("2000-02-29", "2000-02-29"),
        ("0000-01-01", "0000-01-01"),
        ("9999-12-31", "9999-12-31"),
        ("2024-02-29T10:00:00Z", "2024-02-29T10:00:00Z"),
        ("2024-02-29t10:00:00z", "2024-02-29T10:00:00Z"),
        ("2024-02-29T10:00:00-00:00", "2024-02-29T10:00:00Z"),
        ("2024-02-29T10:00:00+00:00", "2024-02-29T10:00:00Z"),
        ("2024-02-29T10:00:00.5+02:00", "2024-02-29T08:00:00.500Z"),
        ("2024-02-29T10:00:00.12Z", "2024-02-29T10:00:00.120Z"),
        ("2024-02-29T10:00:00.000Z", "2024-02-29T10:00:00.000Z"),
        ("2024-02-29T10:00:00.123456789Z", "2024-02-29T10:00:00.123Z"),
        ("2024-02-29T23:59:59.9999Z", "2024-02-29T23:59:59.999Z"),
        ("2024-02-29T10:30:00+05:30", "2024-02-29T05:00:00Z"),
        ("2024-02-29T10:00:00-03:15", "2024-02-29T13:15:00Z"),
    ])
    func dateIsRecognisedInCanonicalForm(_ text: String, _ canonical: String) {
        #expect(AttributeValue.recogniseDate(text) == canonical)
    }

    @Test(arguments: [
        ("2024-03-01T01:00:00+02:00", "2024-02-29T23:00:00Z"),
        ("2023-03-01T01:00:00+02:00", "2023-02-28T23:00:00Z"),
        ("1900-03-01T00:30:00+01:00", "1900-02-28T23:30:00Z"),
        ("2024-01-01T00:00:00+00:30", "2023-12-31T23:30:00Z"),
        ("2024-12-31T23:30:00-01:00", "2025-01-01T00:30:00Z"),
        ("2024-02-28T23:00:00-02:00", "2024-02-29T01:00:00Z"),
        ("2023-02-28T23:00:00-02:00", "2023-03-01T01:00:00Z"),
        ("2024-04-30T22:00:00-03:00", "2024-05-01T01:00:00Z"),
        ("2024-06-30T23:59:59+23:59", "2024-06-30T00:00:59Z"),
        ("2024-06-30T00:00:00-23:59", "2024-06-30T23:59:00Z"),
    ])
    func offsetThatCrossesMidnightMovesTheDate(_ text: String, _ canonical: String) {
        #expect(AttributeValue.recogniseDate(text) == canonical)
    }

    @Test func februaryTwentyNinthOfNonLeapYearIsAString() throws {
        #expect(AttributeValue.recogniseDate("2023-02-29") == nil)
        #expect(try AttributeValue(json: .string("2023-02-29"), field: "d") == .string("2023-02-29"))
    }

    @Test func centuryIsALeapYearOnlyWhenDivisibleBy400() {
        #expect(AttributeValue.recogniseDate("1900-02-29") == nil)
        #expect(AttributeValue.recogniseDate("2100-02-29") == nil)
        #expect(AttributeValue.recogniseDate("2000-02-29") == "2000-02-29")
        #expect(AttributeValue.recogniseDate("1600-02-29") == "1600-02-29")
    }

    @Test(arguments: [
        "2024-02-29 10:00:00Z",
        "2024-13-01",
        "2024-00-10",
        "2024-01-00",
        "2024-01-32",
        "2024-04-31",
        "2024-06-31",
        "2024-09-31",
        "2024-11-31",
        "2024-2-29",
        "24-02-29",
        "+2024-02-29",
        "2024/02/29",
        "20240229",
        "2024-02-29T10:00:00",
        "2024-02-29T10:00Z",
        "2024-02-29T10Z",
        "2024-02-29T",
        "2024-02-29Z",
        "2024-02-29T24:00:00Z",
        "2024-02-29T10:60:00Z",
        "2024-02-29T10:00:60Z",
        "2024-02-29T1:00:00Z",
        "2024-02-29T10:00:00+0200",
        "2024-02-29T10:00:00+02",
        "2024-02-29T10:00:00+2:00",
        "2024-02-29T10:00:00+24:00",
        "2024-02-29T10:00:00+02:60",
        "2024-02-29T10:00:00.Z",
        "2024-02-29T10:00:00,5Z",
        "2024-02-29T10:00:00ZZ",
        "2024-02-29T10:00:00Z ",
        " 2024-02-29",
        "2024-02-29 ",
        "2024-02-29x",
        "2024-W09-4",
        "2024-060",
        "９９９９-12-31",
        "9999-12-31T23:00:00-02:00",
        "0000-01-01T00:00:00+01:00",
        "",
        "today",
        "29/02/2024",
    ])
    func textThatIsNotAnRFC3339DateIsAString(_ text: String) throws {
        #expect(AttributeValue.recogniseDate(text) == nil)
        #expect(try AttributeValue(json: .string(text), field: "d") == .string(text))
    }

    // MARK: From CSV cells

    @Test(arguments: [
        ("42", 42.0),
        ("-3.5", -3.5),
        ("+7", 7),
        (".5", 0.5),
        ("5.", 5),
        ("1e3", 1000),
        ("1E-2", 0.01),
        ("2.5e+2", 250),
        ("  12 ", 12),
        ("007", 7),
        ("-0", 0),
    ])
    func csvNumberIsParsed(_ text: String, _ expected: Double) throws {
        #expect(try AttributeValue(text: text, as: .number, field: "n") == .number(expected))
    }

    @Test(arguments: [
        "", " ", "abc", "1,000", "3,5", "1 000", "inf", "-infinity", "nan", "0x10", "1e", "e5", ".",
        "--1", "+-1", "1.2.3", "12abc", "1e400", "$5", "5%", "½",
    ])
    func csvNumberGarbageIsRejected(_ text: String) {
        let error = #expect(throws: DomainError.self) { try AttributeValue(text: text, as: .number, field: "n") }
        #expect(error?.code == "invalid_attribute_value")
        #expect(error?.field == "n")
    }

    @Test(arguments: [
        ("true", true), ("TRUE", true), ("True", true), ("yes", true), ("YES", true), ("1", true),
        ("false", false), ("False", false), ("no", false), ("No", false), ("0", false), (" yes ", true),
    ])
    func csvBooleanIsParsed(_ text: String, _ expected: Bool) throws {
        #expect(try AttributeValue(text: text, as: .boolean, field: "b") == .boolean(expected))
    }

    @Test(arguments: ["", "y", "n", "on", "off", "2", "truee", "t", "f", "nope"])
    func csvBooleanGarbageIsRejected(_ text: String) {
        let error = #expect(throws: DomainError.self) { try AttributeValue(text: text, as: .boolean, field: "b") }
        #expect(error?.code == "invalid_attribute_value")
    }

    @Test func csvDateIsCanonicalised() throws {
        #expect(try AttributeValue(text: "2024-02-29", as: .date, field: "d") == .date("2024-02-29"))
        #expect(try AttributeValue(text: " 2024-02-29T10:00:00+02:00 ", as: .date, field: "d")
            == .date("2024-02-29T08:00:00Z"))
    }

    @Test(arguments: ["", "2023-02-29", "2024-13-01", "tomorrow", "2024-02-29 10:00:00Z", "29.02.2024"])
    func csvDateThatDoesNotParseIsRejected(_ text: String) {
        let error = #expect(throws: DomainError.self) { try AttributeValue(text: text, as: .date, field: "d") }
        #expect(error?.code == "invalid_attribute_value")
        #expect(error?.field == "d")
    }

    @Test func csvStringStaysAsWritten() throws {
        #expect(try AttributeValue(text: " Pro plan ", as: .string, field: "s") == .string(" Pro plan "))
        #expect(try AttributeValue(text: "", as: .string, field: "s") == .string(""))
        #expect(try AttributeValue(text: "42", as: .string, field: "s") == .string("42"))
        #expect(try AttributeValue(text: "true", as: .string, field: "s") == .string("true"))
    }

    @Test func csvStringThatIsADateBecomesADateLikeInJSON() throws {
        let fromCSV = try AttributeValue(text: "2024-02-29T10:00:00+02:00", as: .string, field: "s")
        let fromJSON = try AttributeValue(json: .string("2024-02-29T10:00:00+02:00"), field: "s")
        #expect(fromCSV == .date("2024-02-29T08:00:00Z"))
        #expect(fromCSV == fromJSON)
    }

    // MARK: Storage and JSON

    @Test(arguments: [
        (AttributeValue.number(3), "3"),
        (.number(3.0), "3"),
        (.number(-42), "-42"),
        (.number(-0.0), "0"),
        (.number(1.5), "1.5"),
        (.number(0.1), "0.1"),
        (.number(9_007_199_254_740_991), "9007199254740991"),
        (.number(9_007_199_254_740_992), "9007199254740992.0"),
        (.number(-9_007_199_254_740_992), "-9007199254740992.0"),
        (.number(1e20), "1e+20"),
        (.number(1e-7), "1e-07"),
        (.boolean(true), "true"),
        (.boolean(false), "false"),
        (.string("pro"), "pro"),
        (.date("2024-02-29T08:00:00.500Z"), "2024-02-29T08:00:00.500Z"),
    ])
    func storageTextIsCanonical(_ value: AttributeValue, _ text: String) {
        #expect(value.storageText == text)
    }

    @Test(arguments: [
        AttributeValue.string("pro"),
        .string(""),
        .string("42"),
        .number(0),
        .number(42),
        .number(-3.25),
        .number(0.1),
        .number(1e20),
        .number(9_007_199_254_740_994),
        .number(Double.greatestFiniteMagnitude),
        .number(Double.leastNonzeroMagnitude),
        .boolean(true),
        .boolean(false),
        .date("2024-02-29"),
        .date("2024-02-29T08:00:00Z"),
        .date("2024-02-29T08:00:00.500Z"),
    ])
    func storageTextRoundTrips(_ value: AttributeValue) {
        #expect(AttributeValue(kind: value.kind, storageText: value.storageText) == value)
    }

    @Test(arguments: [
        (AttributeValue.Kind.number, "abc"),
        (.number, "inf"),
        (.boolean, "maybe"),
        (.boolean, "TRUE"),
        (.date, "2023-02-29"),
    ])
    func storedTextThatNoLongerParsesComesBackAsAString(_ kind: AttributeValue.Kind, _ text: String) {
        #expect(AttributeValue(kind: kind, storageText: text) == .string(text))
    }

    @Test func jsonOfADateIsItsCanonicalString() {
        #expect(AttributeValue.date("2024-02-29").json == .string("2024-02-29"))
        #expect(AttributeValue.string("pro").json == .string("pro"))
        #expect(AttributeValue.number(2.5).json == .number(2.5))
        #expect(AttributeValue.boolean(true).json == .bool(true))
    }

    @Test func kindMatchesTheCase() {
        #expect(AttributeValue.string("a").kind == .string)
        #expect(AttributeValue.number(1).kind == .number)
        #expect(AttributeValue.boolean(true).kind == .boolean)
        #expect(AttributeValue.date("2024-02-29").kind == .date)
        #expect(AttributeValue.Kind.allCases.map(\.rawValue) == ["string", "number", "boolean", "date"])
    }
}
