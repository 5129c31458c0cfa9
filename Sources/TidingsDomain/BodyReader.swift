import Foundation

/// Typed access to the fields of a JSON object, with errors naming the field.
public struct BodyReader {
    private let object: [String: JSONValue]
    private var read: Set<String> = []

    public init(_ object: [String: JSONValue]) {
        self.object = object
    }

    public mutating func string(_ field: String, required: Bool = false) throws(DomainError) -> String? {
        read.insert(field)
        switch object[field] {
        case .string(let value)?: return value
        case nil, .null?:
            if required { throw .invalid("missing_field", "The field '\(field)' is required.", field: field) }
            return nil
        case let other?: throw .invalid("invalid_type", "The field '\(field)' must be a string, not \(other.typeName).", field: field)
        }
    }

    public mutating func number(_ field: String) throws(DomainError) -> Double? {
        read.insert(field)
        switch object[field] {
        case .number(let value)?: return value
        case nil, .null?: return nil
        case let other?: throw .invalid("invalid_type", "The field '\(field)' must be a number, not \(other.typeName).", field: field)
        }
    }

    public mutating func bool(_ field: String) throws(DomainError) -> Bool? {
        read.insert(field)
        switch object[field] {
        case .bool(let value)?: return value
        case nil, .null?: return nil
        case let other?: throw .invalid("invalid_type", "The field '\(field)' must be a boolean, not \(other.typeName).", field: field)
        }
    }

    public mutating func stringArray(_ field: String) throws(DomainError) -> [String]? {
        read.insert(field)
        switch object[field] {
        case nil, .null?: return nil
        case .array(let items)?:
            var strings: [String] = []
            for item in items {
                guard case .string(let value) = item else {
                    throw .invalid("invalid_type", "The field '\(field)' must be an array of strings.", field: field)
                }
                strings.append(value)
            }
            return strings
        case let other?: throw .invalid("invalid_type", "The field '\(field)' must be an array of strings, not \(other.typeName).", field: field)
        }
    }

    public mutating func timestamp(_ field: String) throws(DomainError) -> Date? {
        guard let text = try string(field) else { return nil }
        guard let date = Timestamp.parse(text) else {
            throw .invalid("invalid_timestamp", "The field '\(field)' must be an RFC 3339 date-time.", field: field)
        }
        return date
    }

    /// An array of any values, or `nil` when the field is absent or null.
    public mutating func array(_ field: String) throws(DomainError) -> [JSONValue]? {
        read.insert(field)
        switch object[field] {
        case .array(let value)?: return value
        case nil, .null?: return nil
        case let other?: throw .invalid("invalid_type", "The field '\(field)' must be an array, not \(other.typeName).", field: field)
        }
    }

    /// A nested object, or `nil` when the field is absent or null.
    public mutating func object(_ field: String) throws(DomainError) -> [String: JSONValue]? {
        read.insert(field)
        switch object[field] {
        case .object(let value)?: return value
        case nil, .null?: return nil
        case let other?: throw .invalid("invalid_type", "The field '\(field)' must be an object, not \(other.typeName).", field: field)
        }
    }

    public func rejectUnknownFields() throws(DomainError) {
        if let unknown = object.keys.sorted().first(where: { !read.contains($0) }) {
            throw .invalid("unknown_field", "Unknown field '\(unknown.prefix(64))'.", field: String(unknown.prefix(64)))
        }
    }
}
