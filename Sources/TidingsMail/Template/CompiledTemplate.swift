import TidingsDomain

/// A template version with every field parsed: what is checked when a template is saved,
/// and what renders a message's subject, sender name, reply-to, HTML and text.
public struct CompiledTemplate: Sendable {
    public let subject: MustacheTemplate
    public let fromName: MustacheTemplate
    public let fromAddress: EmailAddress
    public let replyToName: MustacheTemplate?
    public let replyToAddress: MustacheTemplate?
    public let html: MustacheTemplate
    public let text: MustacheTemplate?

    /// Parses every field; the first problem is a 422 naming the field and, for a syntax
    /// error, its line and column.
    public init(_ content: TemplateContent) throws(DomainError) {
        subject = try Self.parse(content.subject, field: "subject")
        let from = try MailboxSource(parsing: content.from, field: "from")
        guard !from.address.contains("{{") else {
            throw .invalid("invalid_mailbox", "The address in 'from' must be written out, not a template: only its display name may use variables.", field: "from")
        }
        fromAddress = try EmailAddress(from.address, field: "from")
        fromName = try Self.parse(from.displayName, field: "from")
        if let replyTo = content.replyTo {
            let mailbox = try MailboxSource(parsing: replyTo, field: "replyTo")
            replyToName = try Self.parse(mailbox.displayName, field: "replyTo")
            replyToAddress = try Self.parse(mailbox.address, field: "replyTo")
            if !mailbox.address.contains("{{") { _ = try EmailAddress(mailbox.address, field: "replyTo") }
        } else {
            replyToName = nil
            replyToAddress = nil
        }
        html = try Self.parse(content.html, field: "html")
        text = try content.text.map { source throws(DomainError) in try Self.parse(source, field: "text") }
    }

    static func parse(_ source: String, field: String) throws(DomainError) -> MustacheTemplate {
        do {
            return try MustacheTemplate(source)
        } catch {
            throw .invalid("template_syntax", "The template in '\(field)' has an error at \(error).", field: field)
        }
    }

    /// Every variable the fields use, in order of first use.
    public var variables: [String] {
        var seen = Set<String>()
        let all = [subject, fromName, replyToName, replyToAddress, html, text].compactMap { $0 }.flatMap(\.variables)
        return all.filter { seen.insert($0).inserted }
    }

    /// What a message carries, rendered.
    public struct Rendered: Sendable, Equatable {
        public var subject: String
        public var fromName: String
        public var fromAddress: EmailAddress
        public var replyToName: String?
        public var replyToAddress: EmailAddress?
        public var html: String
        public var text: String
    }

    /// Renders with `variables`; a missing variable renders empty. A reply-to address that
    /// renders to something other than an address is a 422.
    public func render(_ variables: TemplateValue) throws(DomainError) -> Rendered {
        let html = html.render(variables, escaping: .html)
        var replyTo: EmailAddress?
        if let replyToAddress {
            let rendered = replyToAddress.render(variables, escaping: .headerField)
            replyTo = try EmailAddress(rendered, field: "replyTo")
        }
        return Rendered(
            subject: subject.render(variables, escaping: .headerField),
            fromName: fromName.render(variables, escaping: .headerField),
            fromAddress: fromAddress,
            replyToName: replyToName?.render(variables, escaping: .headerField),
            replyToAddress: replyTo,
            html: html,
            text: text?.render(variables, escaping: .none) ?? HTMLText.plainText(fromHTML: html)
        )
    }
}

extension TemplateValue {
    /// JSON as template input.
    public init(_ json: JSONValue) {
        switch json {
        case .null: self = .null
        case .bool(let value): self = .bool(value)
        case .number(let value): self = .number(value)
        case .string(let value): self = .string(value)
        case .array(let items): self = .list(items.map(TemplateValue.init))
        case .object(let fields): self = .object(fields.mapValues(TemplateValue.init))
        }
    }
}
