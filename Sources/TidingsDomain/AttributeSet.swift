/// Limits on the attributes of one contact or the properties of one event.
public struct AttributeLimits: Sendable {
    /// The most attributes one request may set or remove. It keeps a single request
    /// from turning a contact into an unbounded key-value store.
    public static let maxAttributes = 100
}

/// Turns the attributes of a request into normalised names and typed values.
public enum AttributeMap {
    /// Normalises every key with ``AttributeName`` and converts every value with
    /// ``AttributeValue/init(json:field:)``.
    ///
    /// A `null` value becomes a `nil` entry, which means "remove this attribute". Keys
    /// are processed in sorted order, so the same request always fails with the same error.
    ///
    /// - Parameters:
    ///   - object: the attributes as sent, e.g. a contact body without its `email`.
    ///   - fieldPrefix: put before each original key to name the field in errors: `""`
    ///     for contact attributes (`firstName`), `"properties."` for event properties
    ///     (`properties.firstName`).
    /// - Throws: `too_many_attributes` for more than ``AttributeLimits/maxAttributes``
    ///   keys; `invalid_attribute_name` for a bad key or for two keys that normalise to the
    ///   same name (such as `firstName` and `first_name`); the errors of
    ///   ``AttributeValue/init(json:field:)`` for bad values.
    public static func parse(
        _ object: [String: JSONValue], fieldPrefix: String
    ) throws(DomainError) -> [String: AttributeValue?] {
        guard object.count <= AttributeLimits.maxAttributes else {
            let container = fieldPrefix.hasSuffix(".") ? String(fieldPrefix.dropLast()) : fieldPrefix
            throw DomainError(
                .invalid,
                code: "too_many_attributes",
                message: "At most \(AttributeLimits.maxAttributes) attributes may be given at once; got \(object.count).",
                field: container.isEmpty ? nil : container
            )
        }

        var result: [String: AttributeValue?] = [:]
        var originalKeys: [String: String] = [:]
        for key in object.keys.sorted() {
            let field = fieldPrefix + key
            let name = try AttributeName.normalise(key, field: field)
            if let earlier = originalKeys[name] {
                throw .invalid(
                    "invalid_attribute_name",
                    "Attribute names \"\(earlier)\" and \"\(key)\" are duplicates after normalisation: both become \"\(name)\". Send only one.",
                    field: field
                )
            }
            originalKeys[name] = key
            result.updateValue(try AttributeValue(json: object[key]!, field: field), forKey: name)
        }
        return result
    }
}
