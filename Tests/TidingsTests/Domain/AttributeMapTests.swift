import Testing
@testable import TidingsDomain

@Suite("AttributeMap")
struct AttributeMapTests {
    @Test func keysAreNormalisedAndValuesTyped() throws {
        let parsed = try AttributeMap.parse(
            [
                "firstName": .string("Ann"),
                "Plan Tier": .string("pro"),
                "age": .number(41),
                "vip": .bool(true),
                "trialEnds": .string("2024-02-29T10:00:00+02:00"),
            ],
            fieldPrefix: ""
        )
        #expect(parsed == [
            "first_name": .string("Ann"),
            "plan_tier": .string("pro"),
            "age": .number(41),
            "vip": .boolean(true),
            "trial_ends": .date("2024-02-29T08:00:00Z"),
        ])
    }

    @Test func nullBecomesARemovalEntry() throws {
        let parsed = try AttributeMap.parse(["Plan": .null, "age": .number(3)], fieldPrefix: "")
        #expect(parsed.count == 2)
        #expect(parsed.keys.contains("plan"))
        #expect(parsed["plan"] == .some(nil))
        #expect(parsed["age"] == .some(.number(3)))
    }

    @Test func emptyObjectGivesNoChanges() throws {
        #expect(try AttributeMap.parse([:], fieldPrefix: "").isEmpty)
    }

    @Test(arguments: [
        ("firstName", "first_name"),
        ("First Name", "firstName"),
        ("plan-tier", "plan.tier"),
    ])
    func keysThatNormaliseToTheSameNameAreRejected(_ one: String, _ other: String) {
        let error = #expect(throws: DomainError.self) {
            try AttributeMap.parse([one: .string("a"), other: .string("b")], fieldPrefix: "")
        }
        #expect(error?.kind == .invalid)
        #expect(error?.code == "invalid_attribute_name")
        #expect(error?.message.contains("duplicates after normalisation") == true)
    }

    @Test func duplicateErrorNamesTheLaterKeyInSortedOrder() {
        let error = #expect(throws: DomainError.self) {
            try AttributeMap.parse(["first_name": .string("a"), "firstName": .string("b")], fieldPrefix: "properties.")
        }
        #expect(error?.field == "properties.first_name")
    }

    @Test func invalidNameErrorNamesThePrefixedOriginalKey() {
        let error = #expect(throws: DomainError.self) {
            try AttributeMap.parse(["prénom": .string("Ann")], fieldPrefix: "properties.")
        }
        #expect(error?.code == "invalid_attribute_name")
        #expect(error?.field == "properties.prénom")
    }

    @Test func invalidValueErrorNamesThePrefixedOriginalKey() {
        let error = #expect(throws: DomainError.self) {
            try AttributeMap.parse(["favouriteTags": .array([])], fieldPrefix: "properties.")
        }
        #expect(error?.code == "unsupported_attribute_type")
        #expect(error?.field == "properties.favouriteTags")
    }

    @Test func contactAttributeErrorNamesTheBareKey() {
        let error = #expect(throws: DomainError.self) {
            try AttributeMap.parse(["favouriteTags": .object([:])], fieldPrefix: "")
        }
        #expect(error?.field == "favouriteTags")
    }

    @Test func sameRequestAlwaysFailsWithTheSameError() {
        let object: [String: JSONValue] = [
            "zeta": .array([]), "alpha": .object([:]), "mid": .array([]), "beta": .array([]),
        ]
        for _ in 0..<20 {
            let error = #expect(throws: DomainError.self) { try AttributeMap.parse(object, fieldPrefix: "") }
            #expect(error?.field == "alpha")
        }
    }

    @Test func maxAttributesAreAccepted() throws {
        let object = attributes(count: AttributeLimits.maxAttributes)
        #expect(try AttributeMap.parse(object, fieldPrefix: "").count == 100)
    }

    @Test(arguments: [("", nil), ("properties.", "properties")] as [(String, String?)])
    func moreThanMaxAttributesIsRejected(_ prefix: String, _ field: String?) {
        let object = attributes(count: AttributeLimits.maxAttributes + 1)
        let error = #expect(throws: DomainError.self) { try AttributeMap.parse(object, fieldPrefix: prefix) }
        #expect(error?.kind == .invalid)
        #expect(error?.code == "too_many_attributes")
        #expect(error?.field == field)
    }

    private func attributes(count: Int) -> [String: JSONValue] {
        Dictionary(uniqueKeysWithValues: (0..<count).map { ("attr\($0)", JSONValue.number(Double($0))) })
    }
}
