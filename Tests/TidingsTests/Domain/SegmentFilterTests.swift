import Foundation
import Testing
@testable import TidingsDomain

@Suite("SegmentFilter")
struct SegmentFilterTests {
    // MARK: Helpers

    private func json(_ text: String) throws -> JSONValue {
        try JSONValue.parse(Array(text.utf8))
    }

    private func parse(_ text: String) throws -> SegmentFilter {
        try SegmentFilter(json: json(text))
    }

    private func parseError(_ text: String) throws -> DomainError? {
        let value = try json(text)
        return #expect(throws: DomainError.self) { try SegmentFilter(json: value) }
    }

    private func one(_ condition: String) throws -> SegmentFilter {
        try parse(#"{"match": "all", "conditions": [\#(condition)]}"#)
    }

    private func matches(_ condition: String, _ attributes: [String: AttributeValue]) throws -> Bool {
        try one(condition).matches(SegmentSubject(attributes: attributes), now: Date(timeIntervalSince1970: 0))
    }

    private static let now = Date(timeIntervalSince1970: 1_780_000_000)
    private static let day: TimeInterval = 86_400

    // MARK: Parsing

    @Test func attributeConditionOfEveryOperatorParses() throws {
        let filter = try parse("""
            {"match": "any", "conditions": [
              {"attribute": "plan", "op": "eq", "value": "pro"},
              {"attribute": "plan", "op": "neq", "value": 3},
              {"attribute": "plan", "op": "contains", "value": "Pr"},
              {"attribute": "score", "op": "gt", "value": 2.5},
              {"attribute": "joined", "op": "lt", "value": "2024-03-01"},
              {"attribute": "vip", "op": "exists"},
              {"attribute": "vip", "op": "exists", "value": false},
              {"attribute": "vip", "op": "eq", "value": true}
            ]}
            """)
        #expect(filter.match == .any)
        #expect(filter.conditions == [
            .attribute(name: "plan", test: .equals(.string("pro"))),
            .attribute(name: "plan", test: .notEquals(.number(3))),
            .attribute(name: "plan", test: .contains("Pr")),
            .attribute(name: "score", test: .greaterThan(.number(2.5))),
            .attribute(name: "joined", test: .lessThan(.date("2024-03-01"))),
            .attribute(name: "vip", test: .exists(true)),
            .attribute(name: "vip", test: .exists(false)),
            .attribute(name: "vip", test: .equals(.boolean(true))),
        ])
    }

    @Test func namesSlugsAndDatesAreNormalised() throws {
        let filter = try parse("""
            {"match": "all", "conditions": [
              {"attribute": "First Name", "op": "eq", "value": "2024-03-01T10:00:00+02:00"},
              {"event": " Signed-Up ", "op": "did"}
            ]}
            """)
        #expect(filter.conditions == [
            .attribute(name: "first_name", test: .equals(.date("2024-03-01T08:00:00Z"))),
            .event(slug: "signed-up", test: SegmentEventTest(did: true, withinDays: nil, atLeast: 1)),
        ])
    }

    @Test func eventConditionReadsWindowAndCount() throws {
        let filter = try parse("""
            {"match": "all", "conditions": [
              {"event": "signup", "op": "didNot", "withinDays": 7, "atLeast": 3},
              {"event": "login", "op": "did", "withinDays": null, "atLeast": null}
            ]}
            """)
        #expect(filter.conditions == [
            .event(slug: "signup", test: SegmentEventTest(did: false, withinDays: 7, atLeast: 3)),
            .event(slug: "login", test: SegmentEventTest(did: true, withinDays: nil, atLeast: 1)),
        ])
    }

    @Test func nestedGroupsParse() throws {
        let filter = try parse("""
            {"match": "all", "conditions": [
              {"attribute": "plan", "op": "exists"},
              {"match": "any", "conditions": [
                {"event": "signup", "op": "did"},
                {"match": "all", "conditions": [{"attribute": "vip", "op": "eq", "value": true}]}
              ]}
            ]}
            """)
        #expect(filter.conditions[1] == .group(SegmentFilter(match: .any, conditions: [
            .event(slug: "signup", test: SegmentEventTest(did: true)),
            .group(SegmentFilter(match: .all, conditions: [.attribute(name: "vip", test: .equals(.boolean(true)))])),
        ])))
    }

    @Test func valuesUpToTheLengthLimitAreAccepted() throws {
        let text = String(repeating: "é", count: SegmentFilter.maxValueLength)
        let filter = try one(#"{"attribute": "note", "op": "contains", "value": "\#(text)"}"#)
        #expect(filter.conditions == [.attribute(name: "note", test: .contains(text))])
        let wide = String(repeating: "😀", count: SegmentFilter.maxValueLength)
        let equality = try one(#"{"attribute": "note", "op": "eq", "value": "\#(wide)"}"#)
        #expect(equality.conditions == [.attribute(name: "note", test: .equals(.string(wide)))])
    }

    @Test func fiveLevelsAndAHundredConditionsAreAccepted() throws {
        var nested = #"{"attribute": "a", "op": "exists"}"#
        for _ in 0..<4 { nested = #"{"match": "all", "conditions": [\#(nested)]}"# }
        _ = try one(nested)

        let conditions = Array(repeating: #"{"attribute": "a", "op": "exists"}"#, count: 100).joined(separator: ",")
        #expect(try parse(#"{"match": "all", "conditions": [\#(conditions)]}"#).conditions.count == 100)
    }

    // MARK: Validation errors

    @Test(arguments: [
        // The filter and groups
        (#"[]"#, "invalid_segment_filter", "filter", "must be a JSON object; got array"),
        (#"{"conditions": [{"attribute": "a", "op": "exists"}]}"#, "invalid_segment_filter", "filter.match", "match is required"),
        (#"{"match": "ALL", "conditions": [{"attribute": "a", "op": "exists"}]}"#, "invalid_segment_filter", "filter.match", #""all""#),
        (#"{"match": true, "conditions": [{"attribute": "a", "op": "exists"}]}"#, "invalid_segment_filter", "filter.match", #""any""#),
        (#"{"match": "all"}"#, "invalid_segment_filter", "filter.conditions", "conditions is required"),
        (#"{"match": "all", "conditions": {}}"#, "invalid_segment_filter", "filter.conditions", "got object"),
        (#"{"match": "all", "conditions": []}"#, "invalid_segment_filter", "filter.conditions", "must not be empty"),
        (#"{"match": "all", "conditions": [{"attribute": "a", "op": "exists"}], "name": "x"}"#,
         "invalid_segment_filter", "filter.name", #"Unknown key "name""#),
        (#"{"match": "all", "conditions": ["plan"]}"#, "invalid_segment_filter", "filter.conditions[0]", "got string"),
        (#"{"match": "all", "conditions": [{"op": "eq"}]}"#, "invalid_segment_filter", "filter.conditions[0]", #"needs "attribute""#),
        (#"{"match": "all", "conditions": [{"attribute": "a", "event": "b", "op": "eq"}]}"#,
         "invalid_segment_filter", "filter.conditions[0]", "not several"),
        (#"{"match": "all", "conditions": [{"match": "all", "conditions": []}]}"#,
         "invalid_segment_filter", "filter.conditions[0].conditions", "must not be empty"),
        (#"{"match": "all", "conditions": [{"attribute": "a", "op": "exists"}, {"match": "any", "conditions": [{"attribute": "a", "op": "is"}]}]}"#,
         "invalid_segment_filter", "filter.conditions[1].conditions[0].op", #""exists""#),
        // Attribute conditions
        (#"{"match": "all", "conditions": [{"attribute": "a", "op": "exists", "values": 1}]}"#,
         "invalid_segment_filter", "filter.conditions[0].values", #"allowed here: "attribute", "op", "value""#),
        (#"{"match": "all", "conditions": [{"attribute": 7, "op": "exists"}]}"#, "invalid_segment_filter", "filter.conditions[0].attribute", "must be a string"),
        (#"{"match": "all", "conditions": [{"attribute": "1plan", "op": "exists"}]}"#, "invalid_attribute_name", "filter.conditions[0].attribute", "start with a letter"),
        (#"{"match": "all", "conditions": [{"attribute": "a"}]}"#, "invalid_segment_filter", "filter.conditions[0].op", "op is required"),
        (#"{"match": "all", "conditions": [{"attribute": "a", "op": "exists"}, {"attribute": "a", "op": "exists"}, {"attribute": "a", "op": "equals", "value": 1}]}"#,
         "invalid_segment_filter", "filter.conditions[2].op", #""eq", "neq", "contains", "gt", "lt" or "exists""#),
        (#"{"match": "all", "conditions": [{"attribute": "a", "op": 1}]}"#, "invalid_segment_filter", "filter.conditions[0].op", #""eq""#),
        (#"{"match": "all", "conditions": [{"attribute": "a", "op": "eq"}]}"#, "invalid_segment_filter", "filter.conditions[0].value", #"use op "exists""#),
        (#"{"match": "all", "conditions": [{"attribute": "a", "op": "neq", "value": null}]}"#, "invalid_segment_filter", "filter.conditions[0].value", #"use op "exists""#),
        (#"{"match": "all", "conditions": [{"attribute": "a", "op": "eq", "value": ["x"]}]}"#, "invalid_segment_filter", "filter.conditions[0].value", "got array"),
        (#"{"match": "all", "conditions": [{"attribute": "a", "op": "contains"}]}"#, "invalid_segment_filter", "filter.conditions[0].value", "value is required"),
        (#"{"match": "all", "conditions": [{"attribute": "a", "op": "contains", "value": 4}]}"#, "invalid_segment_filter", "filter.conditions[0].value", "non-empty string; got number"),
        (#"{"match": "all", "conditions": [{"attribute": "a", "op": "contains", "value": ""}]}"#, "invalid_segment_filter", "filter.conditions[0].value", "got an empty string"),
        (#"{"match": "all", "conditions": [{"attribute": "a", "op": "gt", "value": "pro"}]}"#, "invalid_segment_filter", "filter.conditions[0].value", "not a date"),
        (#"{"match": "all", "conditions": [{"attribute": "a", "op": "lt", "value": true}]}"#, "invalid_segment_filter", "filter.conditions[0].value", "a number or a date"),
        (#"{"match": "all", "conditions": [{"attribute": "a", "op": "lt"}]}"#, "invalid_segment_filter", "filter.conditions[0].value", "value is required"),
        (#"{"match": "all", "conditions": [{"attribute": "a", "op": "exists", "value": "yes"}]}"#, "invalid_segment_filter", "filter.conditions[0].value", "must be a boolean"),
        // Event conditions
        (#"{"match": "all", "conditions": [{"event": "sign up", "op": "did"}]}"#, "invalid_slug", "filter.conditions[0].event", "Event slug must match"),
        (#"{"match": "all", "conditions": [{"event": 3, "op": "did"}]}"#, "invalid_segment_filter", "filter.conditions[0].event", "must be a string"),
        (#"{"match": "all", "conditions": [{"event": "signup"}]}"#, "invalid_segment_filter", "filter.conditions[0].op", "op is required"),
        (#"{"match": "all", "conditions": [{"event": "signup", "op": "didnot"}]}"#, "invalid_segment_filter", "filter.conditions[0].op", #""did" or "didNot""#),
        (#"{"match": "all", "conditions": [{"event": "signup", "op": "did", "within_days": 3}]}"#,
         "invalid_segment_filter", "filter.conditions[0].within_days", #""withinDays""#),
        (#"{"match": "all", "conditions": [{"event": "signup", "op": "did", "withinDays": 0}]}"#, "invalid_segment_filter", "filter.conditions[0].withinDays", "from 1 to 3650"),
        (#"{"match": "all", "conditions": [{"event": "signup", "op": "did", "withinDays": 3651}]}"#, "invalid_segment_filter", "filter.conditions[0].withinDays", "from 1 to 3650"),
        (#"{"match": "all", "conditions": [{"event": "signup", "op": "did", "withinDays": 1.5}]}"#, "invalid_segment_filter", "filter.conditions[0].withinDays", "whole number"),
        (#"{"match": "all", "conditions": [{"event": "signup", "op": "did", "withinDays": "7"}]}"#, "invalid_segment_filter", "filter.conditions[0].withinDays", "whole number"),
        (#"{"match": "all", "conditions": [{"event": "signup", "op": "did", "atLeast": 0}]}"#, "invalid_segment_filter", "filter.conditions[0].atLeast", "from 1 to 1000"),
    ])
    func invalidFilterNamesTheField(_ input: String, _ code: String, _ field: String, _ messagePart: String) throws {
        let error = try parseError(input)
        #expect(error?.kind == .invalid)
        #expect(error?.code == code)
        #expect(error?.field == field)
        #expect(error?.message.contains(messagePart) == true, "message: \(error?.message ?? "none")")
    }

    @Test func stringOverTheLengthLimitIsRefused() throws {
        let text = String(repeating: "a", count: SegmentFilter.maxValueLength + 1)
        for op in ["eq", "neq", "contains"] {
            let error = try parseError(#"{"match": "all", "conditions": [{"attribute": "a", "op": "\#(op)", "value": "\#(text)"}]}"#)
            #expect(error?.code == "segment_value_too_long")
            #expect(error?.field == "filter.conditions[0].value")
        }
    }

    @Test func sixLevelsOfNestingAreRefused() throws {
        var nested = #"{"attribute": "a", "op": "exists"}"#
        for _ in 0..<5 { nested = #"{"match": "all", "conditions": [\#(nested)]}"# }
        let error = try parseError(#"{"match": "all", "conditions": [\#(nested)]}"#)
        #expect(error?.code == "segment_filter_too_large")
        #expect(error?.field == "filter.conditions[0].conditions[0].conditions[0].conditions[0].conditions[0]")
        #expect(error?.message.contains("at most 5 levels") == true)
    }

    @Test func moreThanAHundredConditionsAreRefused() throws {
        let flat = Array(repeating: #"{"attribute": "a", "op": "exists"}"#, count: 101).joined(separator: ",")
        let error = try parseError(#"{"match": "all", "conditions": [\#(flat)]}"#)
        #expect(error?.code == "segment_filter_too_large")
        #expect(error?.field == "filter.conditions[100]")

        // Groups count as conditions too: 1 group + 99 inside + 1 more is 101.
        let inner = Array(repeating: #"{"attribute": "a", "op": "exists"}"#, count: 99).joined(separator: ",")
        let nestedError = try parseError(
            #"{"match": "all", "conditions": [{"match": "any", "conditions": [\#(inner)]}, {"attribute": "b", "op": "exists"}]}"#
        )
        #expect(nestedError?.code == "segment_filter_too_large")
        #expect(nestedError?.field == "filter.conditions[1]")
    }

    @Test func errorPathStartsWithTheGivenField() throws {
        let error = #expect(throws: DomainError.self) {
            try SegmentFilter(json: json(#"{"match": "all", "conditions": [{"attribute": "a", "op": "nope"}]}"#), field: "audience")
        }
        #expect(error?.field == "audience.conditions[0].op")
    }

    // MARK: Round trip

    @Test func jsonValueIsCanonicalAndParsesBackToTheSameFilter() throws {
        let filter = try parse("""
            {"match": "any", "conditions": [
              {"attribute": "firstName", "op": "eq", "value": "Ann"},
              {"attribute": "score", "op": "gt", "value": 2.5},
              {"attribute": "joined", "op": "lt", "value": "2024-03-01T10:00:00.5+02:00"},
              {"attribute": "vip", "op": "exists", "value": true},
              {"attribute": "vip", "op": "exists", "value": false},
              {"match": "all", "conditions": [
                {"event": "Signup", "op": "didNot", "withinDays": 30},
                {"event": "login", "op": "did", "atLeast": 2}
              ]}
            ]}
            """)
        let stored = filter.jsonValue
        #expect(stored.serializedString == """
            {"conditions":[{"attribute":"first_name","op":"eq","value":"Ann"},\
            {"attribute":"score","op":"gt","value":2.5},\
            {"attribute":"joined","op":"lt","value":"2024-03-01T08:00:00.500Z"},\
            {"attribute":"vip","op":"exists"},\
            {"attribute":"vip","op":"exists","value":false},\
            {"conditions":[{"atLeast":1,"event":"signup","op":"didNot","withinDays":30},\
            {"atLeast":2,"event":"login","op":"did"}],"match":"all"}],"match":"any"}
            """)
        #expect(try SegmentFilter(json: stored) == filter)
        #expect(try SegmentFilter(json: JSONValue.parse(stored.serialized)) == filter)
    }

    // MARK: Attribute evaluation

    @Test func equalityOfStringsIgnoresCase() throws {
        let condition = #"{"attribute": "email", "op": "eq", "value": "Ann@Example.com"}"#
        #expect(try matches(condition, ["email": .string("ann@example.COM")]))
        #expect(try !matches(condition, ["email": .string("ann@example.co")]))
        let negated = #"{"attribute": "email", "op": "neq", "value": "Ann@Example.com"}"#
        #expect(try !matches(negated, ["email": .string("ANN@EXAMPLE.COM")]))
        #expect(try matches(negated, ["email": .string("bob@example.com")]))
    }

    @Test(arguments: [
        // (filter value JSON, stored value, eq result)
        ("3", AttributeValue.number(3), true),
        ("3.0", AttributeValue.number(3), true),
        ("3", AttributeValue.number(3.5), false),
        (#""42""#, AttributeValue.number(42), false),
        ("42", AttributeValue.string("42"), false),
        ("true", AttributeValue.boolean(true), true),
        ("true", AttributeValue.boolean(false), false),
        (#""true""#, AttributeValue.boolean(true), false),
        ("1", AttributeValue.boolean(true), false),
        (#""2024-03-01T10:00:00+02:00""#, AttributeValue.date("2024-03-01T08:00:00Z"), true),
        (#""2024-03-01T08:00:00.000Z""#, AttributeValue.date("2024-03-01T08:00:00Z"), true),
        (#""2024-03-01T08:00:00.001Z""#, AttributeValue.date("2024-03-01T08:00:00Z"), false),
        (#""2024-03-01""#, AttributeValue.date("2024-03-01T23:59:59Z"), true),
        (#""2024-03-01""#, AttributeValue.date("2024-03-02T00:00:00Z"), false),
        (#""2024-03-01T12:00:00Z""#, AttributeValue.date("2024-03-01"), true),
        (#""2024-03-01""#, AttributeValue.string("2024-03-01 "), false),
    ])
    func equalityIsTyped(_ value: String, _ stored: AttributeValue, _ expected: Bool) throws {
        #expect(try matches(#"{"attribute": "x", "op": "eq", "value": \#(value)}"#, ["x": stored]) == expected)
        #expect(try matches(#"{"attribute": "x", "op": "neq", "value": \#(value)}"#, ["x": stored]) == !expected)
    }

    @Test func missingAttributeMatchesOnlyNotEqualsAndDoesNotExist() throws {
        let none: [String: AttributeValue] = ["other": .string("pro")]
        #expect(try !matches(#"{"attribute": "plan", "op": "eq", "value": "pro"}"#, none))
        #expect(try matches(#"{"attribute": "plan", "op": "neq", "value": "pro"}"#, none))
        #expect(try !matches(#"{"attribute": "plan", "op": "contains", "value": "pro"}"#, none))
        #expect(try !matches(#"{"attribute": "plan", "op": "gt", "value": 0}"#, none))
        #expect(try !matches(#"{"attribute": "plan", "op": "lt", "value": 0}"#, none))
        #expect(try !matches(#"{"attribute": "plan", "op": "exists"}"#, none))
        #expect(try matches(#"{"attribute": "plan", "op": "exists", "value": false}"#, none))
        #expect(try matches(#"{"attribute": "other", "op": "exists"}"#, none))
        #expect(try !matches(#"{"attribute": "other", "op": "exists", "value": false}"#, none))
    }

    @Test(arguments: [
        (AttributeValue.string("Professional"), true),
        (AttributeValue.string("my PRO plan"), true),
        (AttributeValue.string("pr o"), false),
        (AttributeValue.number(42), false),
        (AttributeValue.boolean(true), false),
        (AttributeValue.date("2024-03-01"), false),
    ])
    func containsIsACaseInsensitiveSubstringOfStrings(_ stored: AttributeValue, _ expected: Bool) throws {
        #expect(try matches(#"{"attribute": "plan", "op": "contains", "value": "pRo"}"#, ["plan": stored]) == expected)
    }

    @Test func containsOnADateLikeValueLooksForTheText() throws {
        #expect(try matches(#"{"attribute": "note", "op": "contains", "value": "2024-03-01"}"#, ["note": .string("renewed 2024-03-01")]))
    }

    @Test(arguments: [
        // (bound JSON, stored, gt, lt)
        ("10", AttributeValue.number(11), true, false),
        ("10", AttributeValue.number(10), false, false),
        ("10", AttributeValue.number(9.99), false, true),
        ("-1", AttributeValue.number(-2), false, true),
        ("10", AttributeValue.string("11"), false, false),
        ("10", AttributeValue.boolean(true), false, false),
        ("10", AttributeValue.date("2024-03-01"), false, false),
        (#""2024-03-01T10:00:00Z""#, AttributeValue.date("2024-03-01T10:00:00.001Z"), true, false),
        (#""2024-03-01T10:00:00Z""#, AttributeValue.date("2024-03-01T10:00:00.000Z"), false, false),
        (#""2024-03-01T10:00:00Z""#, AttributeValue.date("2024-03-01T09:59:59.999Z"), false, true),
        (#""2024-03-01T12:00:00+02:00""#, AttributeValue.date("2024-03-01T10:30:00Z"), true, false),
        (#""2024-03-01""#, AttributeValue.date("2024-03-01T23:59:59Z"), false, false),
        (#""2024-03-01""#, AttributeValue.date("2024-03-02T00:00:00Z"), true, false),
        (#""2024-03-01""#, AttributeValue.date("2024-02-29T23:59:59Z"), false, true),
        (#""2024-03-01""#, AttributeValue.date("2024-03-02"), true, false),
        (#""2024-03-01""#, AttributeValue.number(20240302), false, false),
        (#""2024-03-01""#, AttributeValue.string("2024-03-02x"), false, false),
    ])
    func orderingComparesNumbersAndDatesOnly(_ bound: String, _ stored: AttributeValue, _ greater: Bool, _ less: Bool) throws {
        #expect(try matches(#"{"attribute": "x", "op": "gt", "value": \#(bound)}"#, ["x": stored]) == greater)
        #expect(try matches(#"{"attribute": "x", "op": "lt", "value": \#(bound)}"#, ["x": stored]) == less)
    }

    // MARK: Event evaluation

    private func eventMatches(_ condition: String, _ times: [Date]) throws -> Bool {
        try one(condition).matches(SegmentSubject(attributes: [:], eventTimes: ["signup": times]), now: Self.now)
    }

    @Test func windowIncludesExactlyNDaysAgoAndNothingEarlier() throws {
        let condition = #"{"event": "signup", "op": "did", "withinDays": 7}"#
        #expect(try eventMatches(condition, [Self.now.addingTimeInterval(-7 * Self.day)]))
        #expect(try !eventMatches(condition, [Self.now.addingTimeInterval(-7 * Self.day - 0.001)]))
        #expect(try eventMatches(condition, [Self.now]))
        #expect(try eventMatches(condition, [Self.now.addingTimeInterval(3600)]), "a time slightly ahead still counts")
        #expect(try !eventMatches(condition, []))

        let negated = #"{"event": "signup", "op": "didNot", "withinDays": 7}"#
        #expect(try !eventMatches(negated, [Self.now.addingTimeInterval(-7 * Self.day)]))
        #expect(try eventMatches(negated, [Self.now.addingTimeInterval(-7 * Self.day - 0.001)]))
        #expect(try eventMatches(negated, []))
    }

    @Test func withoutAWindowAnyTimeCounts() throws {
        let condition = #"{"event": "signup", "op": "did"}"#
        #expect(try eventMatches(condition, [Date(timeIntervalSince1970: 0)]))
        #expect(try !eventMatches(condition, []))
        #expect(try !eventMatches(#"{"event": "signup", "op": "didNot"}"#, [Date(timeIntervalSince1970: 0)]))
    }

    @Test func atLeastCountsOnlyOccurrencesInsideTheWindow() throws {
        let condition = #"{"event": "signup", "op": "did", "withinDays": 2, "atLeast": 3}"#
        let inside = [Self.now, Self.now.addingTimeInterval(-Self.day), Self.now.addingTimeInterval(-2 * Self.day)]
        let outside = Self.now.addingTimeInterval(-2 * Self.day - 1)
        #expect(try eventMatches(condition, inside))
        #expect(try !eventMatches(condition, Array(inside.prefix(2)) + [outside, outside]))
        #expect(try eventMatches(condition, [outside] + inside.reversed()), "order of the input does not matter")
        #expect(try eventMatches(#"{"event": "signup", "op": "didNot", "withinDays": 2, "atLeast": 3}"#, Array(inside.prefix(2))))
    }

    @Test func otherSlugsDoNotCount() throws {
        let filter = try one(#"{"event": "signup", "op": "did"}"#)
        #expect(!filter.matches(SegmentSubject(attributes: [:], eventTimes: ["login": [Self.now]]), now: Self.now))
    }

    @Test func eventRequirementsNameTheHighestCountPerSlug() throws {
        let filter = try parse("""
            {"match": "all", "conditions": [
              {"event": "signup", "op": "did"},
              {"attribute": "plan", "op": "exists"},
              {"match": "any", "conditions": [
                {"event": "login", "op": "did", "atLeast": 5},
                {"event": "login", "op": "didNot", "atLeast": 2, "withinDays": 3}
              ]}
            ]}
            """)
        #expect(filter.eventRequirements == ["signup": 1, "login": 5])
    }

    @Test func aContactIsJudgedByItsAttributes() throws {
        let contact = Contact(
            id: "c1", workspaceId: "w1", email: try EmailAddress("ann@example.com"), status: .active,
            attributes: ["plan": .string("Pro")], createdAt: Self.now, updatedAt: Self.now
        )
        let filter = try parse("""
            {"match": "all", "conditions": [
              {"attribute": "plan", "op": "eq", "value": "pro"},
              {"event": "signup", "op": "did", "withinDays": 1}
            ]}
            """)
        #expect(filter.matches(SegmentSubject(contact: contact, eventTimes: ["signup": [Self.now]]), now: Self.now))
        #expect(!filter.matches(SegmentSubject(contact: contact), now: Self.now))
    }

    // MARK: Groups

    @Test func allIsAndAnyIsOrAndGroupsNest() throws {
        let filter = try parse("""
            {"match": "all", "conditions": [
              {"attribute": "plan", "op": "eq", "value": "pro"},
              {"match": "any", "conditions": [
                {"attribute": "seats", "op": "gt", "value": 10},
                {"event": "upgrade", "op": "did", "withinDays": 30}
              ]}
            ]}
            """)
        func judge(_ plan: String, _ seats: Double, upgraded: Bool) -> Bool {
            let subject = SegmentSubject(
                attributes: ["plan": .string(plan), "seats": .number(seats)],
                eventTimes: upgraded ? ["upgrade": [Self.now.addingTimeInterval(-Self.day)]] : [:]
            )
            return filter.matches(subject, now: Self.now)
        }
        #expect(judge("pro", 11, upgraded: false))
        #expect(judge("pro", 5, upgraded: true))
        #expect(judge("pro", 11, upgraded: true))
        #expect(!judge("pro", 5, upgraded: false))
        #expect(!judge("free", 11, upgraded: true))
    }

    // MARK: Generated filters against a reference reading

    /// Random filters over a small space of attributes, values and events, judged by
    /// ``SegmentFilter`` and by `Reference`, which reads the request JSON directly and
    /// counts every event. The subject given to the filter carries only the occurrences
    /// `eventRequirements` asks for, so the contract for callers is checked as well.
    @Test func generatedFiltersAgreeWithAReferenceReading() throws {
        var random = SplitMix64(seed: 0x5E6_0E47)
        var outcomes: [Bool: Int] = [:]
        for _ in 0..<400 {
            let filterJSON = Generator.group(depth: 1, using: &random)
            let filter = try SegmentFilter(json: filterJSON)
            for _ in 0..<10 {
                let contact = Generator.contact(using: &random)
                let subject = SegmentSubject(
                    attributes: contact.attributes,
                    eventTimes: contact.events.reduce(into: [:]) { result, entry in
                        let needed = filter.eventRequirements[entry.key] ?? 0
                        result[entry.key] = Array(entry.value.sorted(by: >).prefix(needed)).shuffled(using: &random)
                    }
                )
                let expected = Reference.matches(filterJSON, contact, now: Self.now)
                let actual = filter.matches(subject, now: Self.now)
                #expect(actual == expected, "filter \(filterJSON.serializedString), contact \(contact)")
                outcomes[actual, default: 0] += 1
                if actual != expected { return }
            }
        }
        // Both answers must be common, or the comparison proves little.
        #expect((outcomes[true] ?? 0) > 500)
        #expect((outcomes[false] ?? 0) > 500)
    }

    struct GeneratedContact: CustomStringConvertible {
        var attributes: [String: AttributeValue]
        var events: [String: [Date]]
        var description: String { "\(attributes) \(events.mapValues { $0.map { $0.timeIntervalSince(SegmentFilterTests.now) / 3600 } }) (hours from now)" }
    }

    enum Generator {
        static let names = ["plan", "score", "joined", "vip"]
        static let stringValues = ["pro", "PRO", "Free", "professional", "42", "2024-03-01x"]
        static let numberValues: [Double] = [-1, 0, 2.5, 42, 100]
        static let dateValues = ["2024-03-01", "2024-03-02", "2024-03-01T00:00:00Z", "2024-03-01T23:59:59.999Z", "2024-02-29T23:00:00-02:00"]
        static let slugs = ["signup", "login"]

        static func pick<T>(_ items: [T], _ random: inout SplitMix64) -> T { items[Int(random.next() % UInt64(items.count))] }

        static func anyValue(_ random: inout SplitMix64) -> JSONValue {
            switch random.next() % 4 {
            case 0: .string(pick(stringValues, &random))
            case 1: .number(pick(numberValues, &random))
            case 2: .bool(random.next() % 2 == 0)
            default: .string(pick(dateValues, &random))
            }
        }

        static func group(depth: Int, using random: inout SplitMix64) -> JSONValue {
            let count = 1 + Int(random.next() % 3)
            let conditions: [JSONValue] = (0..<count).map { _ in condition(depth: depth, using: &random) }
            return .object(["match": .string(random.next() % 2 == 0 ? "all" : "any"), "conditions": .array(conditions)])
        }

        static func condition(depth: Int, using random: inout SplitMix64) -> JSONValue {
            let roll = random.next() % 10
            if roll < 2, depth < 3 { return group(depth: depth + 1, using: &random) }
            if roll < 5 {
                var members: [String: JSONValue] = [
                    "event": .string(pick(slugs, &random)),
                    "op": .string(random.next() % 2 == 0 ? "did" : "didNot"),
                ]
                if random.next() % 3 != 0 { members["withinDays"] = .number(Double(1 + random.next() % 4)) }
                if random.next() % 2 == 0 { members["atLeast"] = .number(Double(1 + random.next() % 3)) }
                return .object(members)
            }
            var members: [String: JSONValue] = ["attribute": .string(pick(names, &random))]
            switch random.next() % 6 {
            case 0: members["op"] = .string("eq"); members["value"] = anyValue(&random)
            case 1: members["op"] = .string("neq"); members["value"] = anyValue(&random)
            case 2: members["op"] = .string("contains"); members["value"] = .string(pick(["pro", "R", "42", "2024"], &random))
            case 3, 4:
                members["op"] = .string(random.next() % 2 == 0 ? "gt" : "lt")
                members["value"] = random.next() % 2 == 0 ? .number(pick(numberValues, &random)) : .string(pick(dateValues, &random))
            default:
                members["op"] = .string("exists")
                if random.next() % 2 == 0 { members["value"] = .bool(random.next() % 2 == 0) }
            }
            return .object(members)
        }

        static func contact(using random: inout SplitMix64) -> GeneratedContact {
            var attributes: [String: AttributeValue] = [:]
            for name in names where random.next() % 4 != 0 {
                switch random.next() % 4 {
                case 0: attributes[name] = .string(pick(stringValues, &random))
                case 1: attributes[name] = .number(pick(numberValues, &random))
                case 2: attributes[name] = .boolean(random.next() % 2 == 0)
                default: attributes[name] = .date(AttributeValue.recogniseDate(pick(dateValues, &random))!)
                }
            }
            var events: [String: [Date]] = [:]
            for slug in slugs where random.next() % 3 != 0 {
                // Half-day steps from 1 day ahead to 5 days back hit the window edges exactly.
                events[slug] = (0..<Int(random.next() % 5)).map { _ in
                    SegmentFilterTests.now.addingTimeInterval(Double(2 - Int(random.next() % 13)) * SegmentFilterTests.day / 2)
                }
            }
            return GeneratedContact(attributes: attributes, events: events)
        }
    }

    /// Reads the request JSON directly. Dates are looked up in a table of the generated
    /// values (day and instant in seconds) instead of being parsed.
    enum Reference {
        static let dates: [String: (day: String, instant: Double?)] = [
            "2024-03-01": ("2024-03-01", nil),
            "2024-03-02": ("2024-03-02", nil),
            "2024-03-01T00:00:00Z": ("2024-03-01", 1_709_251_200),
            "2024-03-01T23:59:59.999Z": ("2024-03-01", 1_709_337_599.999),
            "2024-02-29T23:00:00-02:00": ("2024-03-01", 1_709_254_800),
            // The canonical forms stored on contacts.
            "2024-03-01T01:00:00Z": ("2024-03-01", 1_709_254_800),
        ]

        enum Typed { case text(String), number(Double), flag(Bool), date(day: String, instant: Double?) }

        static func typed(_ json: JSONValue) -> Typed {
            switch json {
            case .string(let text): if let date = dates[text] { return .date(day: date.day, instant: date.instant) }; return .text(text)
            case .number(let number): return .number(number)
            case .bool(let flag): return .flag(flag)
            default: fatalError("not generated")
            }
        }

        static func typed(_ value: AttributeValue) -> Typed {
            switch value {
            case .string(let text): .text(text)
            case .number(let number): .number(number)
            case .boolean(let flag): .flag(flag)
            case .date(let text): .date(day: dates[text]!.day, instant: dates[text]!.instant)
            }
        }

        /// -1, 0, 1, or nil when the two cannot be ordered.
        static func sign(_ stored: Typed, _ operand: Typed) -> Int? {
            switch (stored, operand) {
            case (.number(let a), .number(let b)): return a == b ? 0 : (a < b ? -1 : 1)
            case (.date(let dayA, let instantA), .date(let dayB, let instantB)):
                if let instantA, let instantB { return instantA == instantB ? 0 : (instantA < instantB ? -1 : 1) }
                return dayA == dayB ? 0 : (dayA < dayB ? -1 : 1)
            default: return nil
            }
        }

        static func equal(_ stored: Typed, _ operand: Typed) -> Bool {
            switch (stored, operand) {
            case (.text(let a), .text(let b)): return a.caseInsensitiveCompare(b) == .orderedSame
            case (.flag(let a), .flag(let b)): return a == b
            default: return sign(stored, operand) == 0
            }
        }

        static func matches(_ json: JSONValue, _ contact: GeneratedContact, now: Date) -> Bool {
            guard case .object(let members) = json else { fatalError("not generated") }
            if case .array(let conditions)? = members["conditions"] {
                let results = conditions.map { matches($0, contact, now: now) }
                return members["match"] == .string("all") ? !results.contains(false) : results.contains(true)
            }
            guard case .string(let op)? = members["op"] else { fatalError("not generated") }
            if case .string(let slug)? = members["event"] {
                var window = -Double.infinity
                if case .number(let days)? = members["withinDays"] { window = now.timeIntervalSince1970 - days * 86_400 }
                var needed = 1.0
                if case .number(let count)? = members["atLeast"] { needed = count }
                let inWindow = (contact.events[slug] ?? []).filter { $0.timeIntervalSince1970 >= window }.count
                return op == "did" ? Double(inWindow) >= needed : Double(inWindow) < needed
            }
            guard case .string(let name)? = members["attribute"] else { fatalError("not generated") }
            let stored = contact.attributes[name].map(typed)
            switch op {
            case "exists":
                var wanted = true
                if case .bool(let flag)? = members["value"] { wanted = flag }
                return wanted ? stored != nil : stored == nil
            case "eq":
                return stored.map { equal($0, typed(members["value"]!)) } ?? false
            case "neq":
                return !(stored.map { equal($0, typed(members["value"]!)) } ?? false)
            case "contains":
                guard case .text(let text)? = stored, case .string(let needle)? = members["value"] else { return false }
                return text.range(of: needle, options: .caseInsensitive) != nil
            case "gt":
                return stored.flatMap { sign($0, typed(members["value"]!)) } == 1
            case "lt":
                return stored.flatMap { sign($0, typed(members["value"]!)) } == -1
            default:
                fatalError("not generated")
            }
        }
    }
}

/// A small seeded generator, so a failure of the generated test repeats.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
