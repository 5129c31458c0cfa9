/// A rule of the domain that a request broke.
///
/// Each case maps to one HTTP status in the HTTP layer; `code` is the stable,
/// machine-readable identifier clients switch on, `message` is safe to show
/// (it never repeats personal data), and `field` names the offending input.
public struct DomainError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The input is well-formed but breaks a rule (HTTP 422).
        case invalid
        /// The input could not be read at all (HTTP 400).
        case malformed
        /// The thing asked for does not exist in this workspace (HTTP 404).
        case notFound
        /// The request conflicts with the current state (HTTP 409).
        case conflict
        /// The input is larger than a documented limit (HTTP 413).
        case tooLarge
        /// The credentials are missing or wrong (HTTP 401).
        case unauthenticated
        /// The credentials are valid but lack a permission (HTTP 403).
        case forbidden
    }

    public var kind: Kind
    public var code: String
    public var message: String
    public var field: String?

    public init(_ kind: Kind, code: String, message: String, field: String? = nil) {
        self.kind = kind
        self.code = code
        self.message = message
        self.field = field
    }

    public static func invalid(_ code: String, _ message: String, field: String? = nil) -> DomainError {
        DomainError(.invalid, code: code, message: message, field: field)
    }

    public static func notFound(_ code: String, _ message: String) -> DomainError {
        DomainError(.notFound, code: code, message: message)
    }

    public var description: String { "\(kind.rawValue)(\(code)): \(message)" }
}
