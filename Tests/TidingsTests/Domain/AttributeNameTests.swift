import Testing
@testable import TidingsDomain

@Suite("AttributeName")
struct AttributeNameTests {
    @Test(arguments: [
        ("firstName", "first_name"),
        ("First Name", "first_name"),
        ("first_name", "first_name"),
        ("FIRST_NAME", "first_name"),
        ("first-name", "first_name"),
        ("plan-tier", "plan_tier"),
        ("utm.source", "utm_source"),
        ("billing/country", "billing_country"),
        ("x", "x"),
        ("plan2", "plan2"),
        ("a1B", "a1_b"),
        ("address2City", "address2_city"),
        ("camelCase_with-mixed.separators", "camel_case_with_mixed_separators"),
    ])
    func nameIsNormalisedToSnakeCase(_ raw: String, _ expected: String) throws {
        #expect(try AttributeName.normalise(raw, field: raw) == expected)
    }

    @Test(arguments: [
        ("userID", "user_id"),
        ("ID", "id"),
        ("HTMLBody", "htmlbody"),
        ("iOSVersion", "i_osversion"),
    ])
    func runOfCapitalsIsNotSplit(_ raw: String, _ expected: String) throws {
        #expect(try AttributeName.normalise(raw, field: raw) == expected)
    }

    @Test(arguments: [
        ("  spaced  ", "spaced"),
        ("\tname\n", "name"),
        ("__private__", "private"),
        ("-.leading", "leading"),
        ("trailing./", "trailing"),
        ("a--b..c", "a_b_c"),
        ("a - b", "a_b"),
        ("a_-_b", "a_b"),
        ("first  Name", "first_name"),
        ("first_Name", "first_name"),
    ])
    func separatorRunsCollapseAndEdgesAreDropped(_ raw: String, _ expected: String) throws {
        #expect(try AttributeName.normalise(raw, field: raw) == expected)
    }

    @Test func normalisingIsIdempotent() throws {
        for raw in ["firstName", "First Name", "utm.source", "userID", "address2City"] {
            let once = try AttributeName.normalise(raw, field: raw)
            #expect(try AttributeName.normalise(once, field: once) == once)
        }
    }

    @Test(arguments: ["", "   ", "_", "___", "-.-", " / "])
    func nameWithoutLettersIsRejectedAsEmpty(_ raw: String) {
        let error = #expect(throws: DomainError.self) { try AttributeName.normalise(raw, field: "f") }
        #expect(error?.code == "invalid_attribute_name")
        #expect(error?.message.contains("empty") == true)
    }

    @Test(arguments: ["2fa", "1st_name", "_9lives", "42"])
    func nameStartingWithADigitIsRejected(_ raw: String) {
        let error = #expect(throws: DomainError.self) { try AttributeName.normalise(raw, field: "f") }
        #expect(error?.code == "invalid_attribute_name")
        #expect(error?.message.contains("must start with a letter") == true)
    }

    @Test(arguments: ["prénom", "名前", "straße", "\u{212A}elvin", "na\u{200B}me"])
    func nonASCIINameIsRejectedNotTransliterated(_ raw: String) {
        let error = #expect(throws: DomainError.self) { try AttributeName.normalise(raw, field: "f") }
        #expect(error?.code == "invalid_attribute_name")
        #expect(error?.message.contains("not transliterated") == true)
    }

    @Test(arguments: ["first\tname", "first@name", "a+b", "email!", "a:b", "a,b", "a\\b", "{{name}}", "a$b"])
    func nameWithOtherPunctuationIsRejected(_ raw: String) {
        let error = #expect(throws: DomainError.self) { try AttributeName.normalise(raw, field: "f") }
        #expect(error?.code == "invalid_attribute_name")
        #expect(error?.message.contains("only ASCII letters, digits") == true)
    }

    @Test func nameOf64CharactersIsAccepted() throws {
        let raw = String(repeating: "a", count: AttributeName.maxLength)
        #expect(try AttributeName.normalise(raw, field: "f") == raw)
    }

    @Test func nameLongerThan64CharactersIsRejected() {
        let error = #expect(throws: DomainError.self) {
            try AttributeName.normalise(String(repeating: "a", count: 65), field: "f")
        }
        #expect(error?.code == "invalid_attribute_name")
        #expect(error?.message.contains("longer than 64") == true)
    }

    @Test func lengthIsCountedAfterNormalisation() throws {
        // 64 characters in, 65 out: the capital gains an underscore.
        let grows = String(repeating: "a", count: 63) + "B"
        #expect(throws: DomainError.self) { try AttributeName.normalise(grows, field: "f") }
        // 66 characters in, 64 out: the edge separators are dropped.
        let shrinks = "_" + String(repeating: "a", count: 64) + "_"
        #expect(try AttributeName.normalise(shrinks, field: "f").count == 64)
    }

    @Test func errorNamesTheGivenField() {
        let error = #expect(throws: DomainError.self) {
            try AttributeName.normalise("prénom", field: "properties.prénom")
        }
        #expect(error?.kind == .invalid)
        #expect(error?.field == "properties.prénom")
    }
}
