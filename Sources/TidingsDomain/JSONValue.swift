/// Any JSON value, decoded without losing the difference between numbers and booleans.
public enum JSONValue: Hashable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// The JSON type's name, as used in error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }
}

extension JSONValue {
    /// The path of the first string (or object key) holding U+0000, which no
    /// backend can store as text; `nil` when there is none.
    public func pathOfNULCharacter(at path: String = "") -> String? {
        switch self {
        case .string(let text):
            return text.utf8.contains(0) ? path : nil
        case .array(let items):
            for (index, item) in items.enumerated() {
                if let found = item.pathOfNULCharacter(at: "\(path)[\(index)]") { return found }
            }
            return nil
        case .object(let members):
            // Sorted only when there is something to report, so the answer is stable.
            guard members.contains(where: { $0.key.utf8.contains(0) || $0.value.pathOfNULCharacter() != nil }) else { return nil }
            for (key, value) in members.sorted(by: { $0.key < $1.key }) {
                let keyPath = path.isEmpty ? key : "\(path).\(key)"
                if key.utf8.contains(0) { return keyPath }
                if let found = value.pathOfNULCharacter(at: keyPath) { return found }
            }
            return nil
        case .null, .bool, .number:
            return nil
        }
    }
}

extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        // Most likely first: each failed attempt builds an error, which is what decoding costs.
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode([String: JSONValue].self) {
            self = .object(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "Not a JSON value.")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value):
            // Integral values print without a fraction, as clients sent them.
            if value.rounded() == value, abs(value) < 9_007_199_254_740_992 {
                try container.encode(Int64(value))
            } else {
                try container.encode(value)
            }
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}
