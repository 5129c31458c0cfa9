import Foundation

/// A segment's rule: which contacts belong to it, judged from their attributes and events.
///
/// Contact attributes are sealed at rest, so a filter cannot become SQL: contacts are
/// streamed in batches, opened, and judged in memory with
/// ``matches(_:now:)`` (see `SegmentFilter+Evaluation.swift` for the meaning of each
/// operator). This file holds the shape and its validation.
///
/// The JSON shape, exactly:
///
///     {"match": "all" | "any", "conditions": [condition, ...]}
///
/// where a condition is one of
///
/// - `{"attribute": "plan", "op": "eq" | "neq" | "contains" | "gt" | "lt" | "exists", "value": ...}`
/// - `{"event": "signup", "op": "did" | "didNot", "withinDays": 7, "atLeast": 1}`
/// - a nested group of the same shape as the filter itself.
///
/// Unknown keys are refused everywhere, so a misspelt key (`"within_days"`) is an error
/// rather than a condition silently ignored.
public struct SegmentFilter: Hashable, Sendable {
    /// How the conditions of one group combine.
    public enum Match: String, Hashable, Sendable, CaseIterable {
        /// Every condition holds (AND).
        case all
        /// At least one condition holds (OR).
        case any
    }

    public var match: Match
    /// Never empty in a parsed filter.
    public var conditions: [SegmentCondition]

    /// The deepest nesting of groups; the filter itself is level 1.
    public static let maxDepth = 5
    /// The most conditions in the whole filter, nested groups and their contents included.
    public static let maxConditions = 100
    /// The longest string a condition compares with, in characters.
    public static let maxValueLength = 1000
    /// The longest event window, in days (about ten years).
    public static let maxWithinDays = 3650
    /// The highest `atLeast`. It bounds how many occurrence times a caller loads per
    /// contact and slug (see ``eventRequirements``).
    public static let maxAtLeast = 1000

    public init(match: Match, conditions: [SegmentCondition]) {
        self.match = match
        self.conditions = conditions
    }
}

/// One entry of a filter's `conditions`.
public enum SegmentCondition: Hashable, Sendable {
    /// A test on the attribute with this normalised name (see ``AttributeName``).
    case attribute(name: String, test: SegmentAttributeTest)
    /// A test on the events with this normalised slug (see ``EventSlug``).
    case event(slug: String, test: SegmentEventTest)
    /// A nested group.
    case group(SegmentFilter)
}

/// The operator and operand of an attribute condition.
public enum SegmentAttributeTest: Hashable, Sendable {
    /// `eq`
    case equals(AttributeValue)
    /// `neq`
    case notEquals(AttributeValue)
    /// `contains`: a non-empty string.
    case contains(String)
    /// `gt`: the bound is a ``AttributeValue/number(_:)`` or ``AttributeValue/date(_:)``.
    case greaterThan(AttributeValue)
    /// `lt`: the bound is a ``AttributeValue/number(_:)`` or ``AttributeValue/date(_:)``.
    case lessThan(AttributeValue)
    /// `exists` with `true`, or with `false` for "does not exist".
    case exists(Bool)
}

/// The operator and window of an event condition.
public struct SegmentEventTest: Hashable, Sendable {
    /// `did` when true, `didNot` when false.
    public var did: Bool
    /// The window in days of 24 hours back from now; nil means all time.
    public var withinDays: Int?
    /// How many occurrences within the window count as "did"; at least 1.
    public var atLeast: Int

    public init(did: Bool, withinDays: Int? = nil, atLeast: Int = 1) {
        self.did = did
        self.withinDays = withinDays
        self.atLeast = atLeast
    }
}

// MARK: - Parsing

extension SegmentFilter {
    /// Parses and validates a filter from a request.
    ///
    /// Attribute names are normalised with ``AttributeName`` and event slugs with
    /// ``EventSlug``, so `"First Name"` and `"first_name"` are the same condition.
    /// String values that are RFC 3339 dates become dates, exactly as when an attribute
    /// is stored (see ``AttributeValue``).
    ///
    /// - Parameter field: the name of the filter in the request, the start of every
    ///   error's field path, such as `filter.conditions[2].op`.
    /// - Throws: `invalid_segment_filter` for a wrong shape, type, operator or value;
    ///   `segment_filter_too_large` beyond ``maxDepth`` or ``maxConditions``;
    ///   `segment_value_too_long` for strings over ``maxValueLength`` characters;
    ///   `invalid_attribute_name` and `invalid_slug` for names and slugs.
    public init(json: JSONValue, field: String = "filter") throws(DomainError) {
        var parser = Parser()
        self = try parser.group(json, path: field, depth: 1)
    }

    private struct Parser {
        var conditionCount = 0

        mutating func group(_ json: JSONValue, path: String, depth: Int) throws(DomainError) -> SegmentFilter {
            guard depth <= SegmentFilter.maxDepth else {
                throw DomainError(
                    .invalid, code: "segment_filter_too_large",
                    message: "Groups may be nested at most \(SegmentFilter.maxDepth) levels deep, counting the filter itself.",
                    field: path
                )
            }
            let members = try object(json, path: path, what: "A filter or group")
            try refuseUnknownKeys(members, allowed: ["match", "conditions"], path: path)

            guard let matchJSON = members["match"] else {
                throw invalid("match is required: \"all\" (every condition holds) or \"any\" (at least one holds).", "\(path).match")
            }
            guard case .string(let matchText) = matchJSON, let match = Match(rawValue: matchText) else {
                throw invalid("match must be \"all\" (every condition holds) or \"any\" (at least one holds).", "\(path).match")
            }

            guard let conditionsJSON = members["conditions"] else {
                throw invalid("conditions is required: a list of 1 or more conditions.", "\(path).conditions")
            }
            guard case .array(let items) = conditionsJSON else {
                throw invalid("conditions must be a list of conditions; got \(conditionsJSON.typeName).", "\(path).conditions")
            }
            guard !items.isEmpty else {
                throw invalid("conditions must not be empty: a group needs at least one condition.", "\(path).conditions")
            }

            var conditions: [SegmentCondition] = []
            conditions.reserveCapacity(items.count)
            for (index, item) in items.enumerated() {
                let itemPath = "\(path).conditions[\(index)]"
                conditionCount += 1
                guard conditionCount <= SegmentFilter.maxConditions else {
                    throw DomainError(
                        .invalid, code: "segment_filter_too_large",
                        message: "A filter may hold at most \(SegmentFilter.maxConditions) conditions in all, nested groups and their contents included.",
                        field: itemPath
                    )
                }
                conditions.append(try condition(item, path: itemPath, depth: depth))
            }
            return SegmentFilter(match: match, conditions: conditions)
        }

        mutating func condition(_ json: JSONValue, path: String, depth: Int) throws(DomainError) -> SegmentCondition {
            let members = try object(json, path: path, what: "A condition")
            let isAttribute = members["attribute"] != nil
            let isEvent = members["event"] != nil
            let isGroup = members["match"] != nil || members["conditions"] != nil
            guard [isAttribute, isEvent, isGroup].filter({ $0 }).count <= 1 else {
                throw invalid(
                    "A condition is an attribute test, an event test or a group (match and conditions), not several at once.",
                    path
                )
            }
            if isAttribute { return try attributeCondition(members, path: path) }
            if isEvent { return try eventCondition(members, path: path) }
            if isGroup { return .group(try group(json, path: path, depth: depth + 1)) }
            throw invalid(
                "A condition needs \"attribute\" (an attribute test), \"event\" (an event test), or \"match\" and \"conditions\" (a nested group).",
                path
            )
        }

        func attributeCondition(_ members: [String: JSONValue], path: String) throws(DomainError) -> SegmentCondition {
            try refuseUnknownKeys(members, allowed: ["attribute", "op", "value"], path: path)
            guard case .string(let rawName)? = members["attribute"] else {
                throw invalid("attribute must be a string: the name of a contact attribute.", "\(path).attribute")
            }
            let name = try AttributeName.normalise(rawName, field: "\(path).attribute")

            let allowed = "\"eq\", \"neq\", \"contains\", \"gt\", \"lt\" or \"exists\""
            guard let opJSON = members["op"] else {
                throw invalid("op is required for an attribute condition: \(allowed).", "\(path).op")
            }
            guard case .string(let op) = opJSON else {
                throw invalid("op must be \(allowed).", "\(path).op")
            }
            let valuePath = "\(path).value"
            let value = members["value"]
            let test: SegmentAttributeTest
            switch op {
            case "eq":
                test = .equals(try comparand(value, op: op, path: valuePath))
            case "neq":
                test = .notEquals(try comparand(value, op: op, path: valuePath))
            case "contains":
                guard let value else {
                    throw invalid("value is required for op \"contains\": the text to look for.", valuePath)
                }
                guard case .string(let text) = value, !text.isEmpty else {
                    throw invalid("value for op \"contains\" must be a non-empty string; got \(describe(value)).", valuePath)
                }
                try checkLength(text, path: valuePath)
                test = .contains(text)
            case "gt", "lt":
                let bound = try orderedBound(value, op: op, path: valuePath)
                test = op == "gt" ? .greaterThan(bound) : .lessThan(bound)
            case "exists":
                switch value {
                case nil, .null?: test = .exists(true)
                case .bool(let expected)?: test = .exists(expected)
                case let other?:
                    throw invalid(
                        "value for op \"exists\" is optional and must be a boolean: true (the attribute is set) or false (it is not); got \(other.typeName).",
                        valuePath
                    )
                }
            default:
                throw invalid("op must be \(allowed).", "\(path).op")
            }
            return .attribute(name: name, test: test)
        }

        func eventCondition(_ members: [String: JSONValue], path: String) throws(DomainError) -> SegmentCondition {
            try refuseUnknownKeys(members, allowed: ["event", "op", "withinDays", "atLeast"], path: path)
            guard case .string(let rawSlug)? = members["event"] else {
                throw invalid("event must be a string: the slug of an event, such as \"signup\".", "\(path).event")
            }
            let slug: String
            do {
                slug = try EventSlug.normalise(rawSlug)
            } catch {
                throw DomainError(error.kind, code: error.code, message: error.message, field: "\(path).event")
            }

            let allowed = "\"did\" or \"didNot\""
            guard let opJSON = members["op"] else {
                throw invalid("op is required for an event condition: \(allowed).", "\(path).op")
            }
            let did: Bool
            switch opJSON {
            case .string("did"): did = true
            case .string("didNot"): did = false
            default: throw invalid("op must be \(allowed).", "\(path).op")
            }
            let withinDays = try wholeNumber(
                members["withinDays"], in: 1...SegmentFilter.maxWithinDays, name: "withinDays", path: "\(path).withinDays"
            )
            let atLeast = try wholeNumber(
                members["atLeast"], in: 1...SegmentFilter.maxAtLeast, name: "atLeast", path: "\(path).atLeast"
            )
            return .event(slug: slug, test: SegmentEventTest(did: did, withinDays: withinDays, atLeast: atLeast ?? 1))
        }

        // MARK: Values

        /// The operand of `eq` and `neq`: any attribute value, but not null.
        func comparand(_ value: JSONValue?, op: String, path: String) throws(DomainError) -> AttributeValue {
            let allowed = "a string, number, boolean or date"
            guard let value else {
                throw invalid("value is required for op \"\(op)\": \(allowed). To test for a missing attribute, use op \"exists\".", path)
            }
            switch value {
            case .null:
                throw invalid("value for op \"\(op)\" must be \(allowed); to test for a missing attribute, use op \"exists\".", path)
            case .array, .object:
                throw invalid("value for op \"\(op)\" must be \(allowed); got \(value.typeName).", path)
            case .string(let text):
                try checkLength(text, path: path)
                // Built here rather than by `AttributeValue(json:)`, whose byte limit for
                // stored values would contradict the documented limit in characters.
                return AttributeValue.recogniseDate(text).map(AttributeValue.date) ?? .string(text)
            case .bool(let flag):
                return .boolean(flag)
            case .number(let number):
                guard number.isFinite else {
                    throw invalid("value for op \"\(op)\" must be a finite number.", path)
                }
                return .number(number)
            }
        }

        /// The operand of `gt` and `lt`: a number or a date.
        func orderedBound(_ value: JSONValue?, op: String, path: String) throws(DomainError) -> AttributeValue {
            let allowed = "a number or a date (YYYY-MM-DD, or YYYY-MM-DDTHH:MM:SSZ with an offset)"
            guard let value else {
                throw invalid("value is required for op \"\(op)\": \(allowed).", path)
            }
            switch value {
            case .number(let number) where number.isFinite:
                return .number(number)
            case .string(let text):
                guard let date = AttributeValue.recogniseDate(text) else {
                    throw invalid("value for op \"\(op)\" must be \(allowed); got a string that is not a date.", path)
                }
                return .date(date)
            default:
                throw invalid("value for op \"\(op)\" must be \(allowed); got \(value.typeName).", path)
            }
        }

        func wholeNumber(_ value: JSONValue?, in range: ClosedRange<Int>, name: String, path: String) throws(DomainError) -> Int? {
            switch value {
            case nil, .null?:
                return nil
            case .number(let number)? where number.rounded() == number
                && number >= Double(range.lowerBound) && number <= Double(range.upperBound):
                return Int(number)
            default:
                throw invalid("\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound).", path)
            }
        }

        func checkLength(_ text: String, path: String) throws(DomainError) {
            guard text.count <= SegmentFilter.maxValueLength else {
                throw DomainError(
                    .invalid, code: "segment_value_too_long",
                    message: "A value to compare with may be at most \(SegmentFilter.maxValueLength) characters long.",
                    field: path
                )
            }
        }

        // MARK: Shape

        func object(_ json: JSONValue, path: String, what: String) throws(DomainError) -> [String: JSONValue] {
            guard case .object(let members) = json else {
                throw invalid("\(what) must be a JSON object; got \(json.typeName).", path)
            }
            return members
        }

        /// Sorted, so the same input always fails on the same key.
        func refuseUnknownKeys(_ members: [String: JSONValue], allowed: [String], path: String) throws(DomainError) {
            for key in members.keys.sorted() where !allowed.contains(key) {
                let list = allowed.map { "\"\($0)\"" }.joined(separator: ", ")
                throw invalid("Unknown key \"\(key)\"; allowed here: \(list).", "\(path).\(key)")
            }
        }

        func describe(_ value: JSONValue) -> String {
            if case .string = value { return "an empty string" }
            return value.typeName
        }

        func invalid(_ message: String, _ field: String) -> DomainError {
            .invalid("invalid_segment_filter", message, field: field)
        }
    }
}

// MARK: - Back to JSON

extension SegmentFilter {
    /// The filter in its request shape, with names, slugs and dates in canonical form:
    /// what is stored and returned. Parsing it gives back an equal filter.
    public var jsonValue: JSONValue {
        .object([
            "match": .string(match.rawValue),
            "conditions": .array(conditions.map(\.jsonValue)),
        ])
    }
}

extension SegmentCondition {
    public var jsonValue: JSONValue {
        switch self {
        case .attribute(let name, let test):
            var members: [String: JSONValue] = ["attribute": .string(name)]
            switch test {
            case .equals(let value): members["op"] = .string("eq"); members["value"] = value.json
            case .notEquals(let value): members["op"] = .string("neq"); members["value"] = value.json
            case .contains(let text): members["op"] = .string("contains"); members["value"] = .string(text)
            case .greaterThan(let value): members["op"] = .string("gt"); members["value"] = value.json
            case .lessThan(let value): members["op"] = .string("lt"); members["value"] = value.json
            case .exists(let expected):
                members["op"] = .string("exists")
                // `true` is the default, so it is left out as clients usually write it.
                if !expected { members["value"] = .bool(false) }
            }
            return .object(members)
        case .event(let slug, let test):
            var members: [String: JSONValue] = ["event": .string(slug), "op": .string(test.did ? "did" : "didNot")]
            if let withinDays = test.withinDays { members["withinDays"] = .number(Double(withinDays)) }
            members["atLeast"] = .number(Double(test.atLeast))
            return .object(members)
        case .group(let filter):
            return filter.jsonValue
        }
    }
}
