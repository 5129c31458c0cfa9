import Foundation

/// A body of `POST /v1/automations` or `PATCH /v1/automations/{id}`, read and checked.
///
/// Every problem is a 4xx whose `field` is the path of the offending input, such as
/// `steps[2].templateSlug` or `steps[0].duration.unit`. Whether the templates exist is not
/// checked here: a draft may name templates still to be written; enabling checks them.
public struct AutomationInput: Sendable, Equatable {
    public var name: String
    public var status: AutomationStatus
    public var triggerEvent: String
    public var frequency: AutomationFrequency
    public var marketing: Bool
    public var topic: String?
    public var definition: AutomationDefinition

    /// Reads `body` onto `base`: what the body leaves out stays as it is. Without a base
    /// (creating), `name`, `triggerEvent` and a form (`templateSlug` or `steps`) are required;
    /// `status` defaults to `draft`, `frequency` to `once`, `marketing` to false.
    public init(body: [String: JSONValue], base: Automation?) throws(DomainError) {
        var reader = BodyReader(body)
        if let raw = try reader.string("name", required: base == nil) {
            name = try Self.name(raw)
        } else {
            name = base!.name
        }
        if let raw = try reader.string("status") {
            guard let value = AutomationStatus(rawValue: raw) else {
                throw .invalid("invalid_status", "status must be one of \(Self.list(AutomationStatus.allCases.map(\.rawValue))).", field: "status")
            }
            status = value
        } else {
            status = base?.status ?? .draft
        }
        if let raw = try reader.string("triggerEvent", required: base == nil) {
            triggerEvent = try Self.slug(raw, field: "triggerEvent")
        } else {
            triggerEvent = base!.triggerEvent
        }
        if let raw = try reader.string("frequency") {
            guard let value = AutomationFrequency(rawValue: raw) else {
                throw .invalid("invalid_frequency", "frequency must be \"once\" (once per contact) or \"every\" (every time).", field: "frequency")
            }
            frequency = value
        } else {
            frequency = base?.frequency ?? .once
        }
        marketing = try reader.bool("marketing") ?? base?.marketing ?? false
        let topicRaw = try reader.string("topic")
        if body.keys.contains("topic") {
            topic = try topicRaw.map { raw throws(DomainError) in try Self.topic(raw) }
        } else {
            topic = base?.topic
        }

        let templateRaw = try reader.string("templateSlug")
        let delayObject = try reader.object("delay")
        let stepsRaw = try reader.array("steps")
        let exitEvent = try Self.optionalSlugs(body["exitEvent"], field: "exitEvent", single: true)
        _ = try? reader.string("exitEvent")  // marks the field as read; its shape is checked above
        let exitEvents = try Self.optionalSlugs(body["exitEvents"], field: "exitEvents", single: false)
        _ = try? reader.array("exitEvents")
        try reader.rejectUnknownFields()

        let form: AutomationDefinition.Form
        let delay = try delayObject.map { object throws(DomainError) in try Self.duration(.object(object), field: "delay") }
        let delayGiven = body.keys.contains("delay")
        if let stepsRaw {
            if templateRaw != nil {
                throw .invalid("conflicting_forms", "Send templateSlug (one template, the simple form) or steps (a sequence), not both.", field: "templateSlug")
            }
            if delayGiven {
                throw .invalid("conflicting_forms", "delay belongs to the simple form; in a sequence, use a wait step.", field: "delay")
            }
            form = .sequence(try Self.steps(stepsRaw))
        } else if let templateRaw {
            let slug = try Template.validateSlug(templateRaw, field: "templateSlug")
            var keptDelay: AutomationDuration?
            if case .simple(_, let old)? = base?.definition.form { keptDelay = old }
            form = .simple(templateSlug: slug, delay: delayGiven ? delay : keptDelay)
        } else if delayGiven {
            guard case .simple(let slug, _)? = base?.definition.form else {
                if base == nil {
                    throw .invalid("missing_field", "Send templateSlug (the simple form) or steps (a sequence).", field: "templateSlug")
                }
                throw .invalid("conflicting_forms", "This automation is a sequence; delay belongs to the simple form. Change its wait steps instead.", field: "delay")
            }
            form = .simple(templateSlug: slug, delay: delay)
        } else if let base {
            form = base.definition.form
        } else {
            throw .invalid("missing_field", "Send templateSlug (the simple form) or steps (a sequence).", field: "templateSlug")
        }

        if exitEvent != nil, exitEvents != nil {
            throw .invalid("conflicting_fields", "Send exitEvent (one slug) or exitEvents (a list), not both.", field: "exitEvent")
        }
        let exits = exitEvent ?? exitEvents ?? base?.definition.exitEvents ?? []
        let exitField = exitEvent != nil ? "exitEvent" : "exitEvents"
        for (index, slug) in exits.enumerated() where slug == triggerEvent {
            throw .invalid(
                "invalid_exit_event", "An exit event cannot be the trigger event: every enrolment would end as it starts.",
                field: exitEvent != nil ? exitField : "\(exitField)[\(index)]"
            )
        }
        definition = AutomationDefinition(form: form, exitEvents: exits)
    }

    // MARK: Fields

    static func name(_ raw: String) throws(DomainError) -> String {
        let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.count <= Automation.maxNameLength,
              !trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .invalid("invalid_name", "name must be 1 to \(Automation.maxNameLength) characters without control characters.", field: "name")
        }
        return trimmed
    }

    /// Topics are slugs: 1 to 64 lowercase letters, digits, `.`, `_` or `-`.
    static func topic(_ raw: String) throws(DomainError) -> String {
        do {
            return try EventSlug.normalise(raw)
        } catch {
            throw .invalid("invalid_topic", "topic must be a topic's slug: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or a digit.", field: "topic")
        }
    }

    static func slug(_ raw: String, field: String) throws(DomainError) -> String {
        do {
            return try EventSlug.normalise(raw)
        } catch {
            throw DomainError(error.kind, code: error.code, message: error.message, field: field)
        }
    }

    /// `exitEvent` is one slug; `exitEvents` a list of them. Nil when absent or null.
    static func optionalSlugs(_ value: JSONValue?, field: String, single: Bool) throws(DomainError) -> [String]? {
        switch value {
        case nil, .null?:
            return nil
        case .string(let raw)? where single:
            return [try slug(raw, field: field)]
        case .array(let items)? where !single:
            guard items.count <= Automation.maxExitEvents else {
                throw .invalid("too_many_exit_events", "At most \(Automation.maxExitEvents) exit events.", field: field)
            }
            var slugs: [String] = []
            for (index, item) in items.enumerated() {
                guard case .string(let raw) = item else {
                    throw .invalid("invalid_type", "Each exit event must be an event slug (a string).", field: "\(field)[\(index)]")
                }
                let slug = try slug(raw, field: "\(field)[\(index)]")
                if !slugs.contains(slug) { slugs.append(slug) }
            }
            return slugs
        case let other?:
            throw .invalid("invalid_type", single
                ? "exitEvent must be an event slug (a string), not \(other.typeName)."
                : "exitEvents must be a list of event slugs, not \(other.typeName).", field: field)
        }
    }

    static func duration(_ json: JSONValue, field: String) throws(DomainError) -> AutomationDuration {
        guard case .object(let members) = json else {
            throw .invalid("invalid_duration", "A duration is an object: {\"amount\": 3, \"unit\": \"days\"}.", field: field)
        }
        try refuseUnknownKeys(members, allowed: ["amount", "unit"], path: field)
        guard case .number(let number)? = members["amount"], number.rounded() == number, number >= 1, number <= 525_600 else {
            throw .invalid("invalid_duration", "amount must be a whole number of at least 1.", field: "\(field).amount")
        }
        guard case .string(let unitText)? = members["unit"], let unit = AutomationDuration.Unit(rawValue: unitText) else {
            throw .invalid("invalid_duration", "unit must be \"minutes\", \"hours\" or \"days\".", field: "\(field).unit")
        }
        let duration = AutomationDuration(amount: Int(number), unit: unit)
        guard duration.seconds <= AutomationDuration.maxSeconds else {
            throw .invalid("invalid_duration", "A duration may be at most 365 days.", field: "\(field).amount")
        }
        return duration
    }

    // MARK: Steps

    static func steps(_ items: [JSONValue]) throws(DomainError) -> [AutomationStep] {
        guard !items.isEmpty else {
            throw .invalid("invalid_steps", "steps must hold at least one step.", field: "steps")
        }
        guard items.count <= Automation.maxSteps else {
            throw .invalid("too_many_steps", "A sequence may have at most \(Automation.maxSteps) steps.", field: "steps")
        }
        var steps: [AutomationStep] = []
        for (index, item) in items.enumerated() {
            steps.append(try step(item, index: index, count: items.count))
        }
        guard steps.contains(where: { if case .send = $0 { true } else { false } }) else {
            throw .invalid("invalid_steps", "A sequence needs at least one send step.", field: "steps")
        }
        return steps
    }

    static func step(_ json: JSONValue, index: Int, count: Int) throws(DomainError) -> AutomationStep {
        let path = "steps[\(index)]"
        guard case .object(let members) = json else {
            throw .invalid("invalid_type", "Each step must be an object with a type.", field: path)
        }
        let types = ["wait", "waitFor", "send", "condition"]
        guard case .string(let type)? = members["type"], types.contains(type) else {
            throw .invalid("invalid_step", "type must be one of \(list(types)).", field: "\(path).type")
        }
        switch type {
        case "wait":
            try refuseUnknownKeys(members, allowed: ["type", "duration"], path: path)
            guard let duration = members["duration"] else {
                throw .invalid("missing_field", "A wait step needs duration: {\"amount\", \"unit\"}.", field: "\(path).duration")
            }
            return .wait(try Self.duration(duration, field: "\(path).duration"))
        case "waitFor":
            try refuseUnknownKeys(members, allowed: ["type", "event", "timeout", "onTimeout"], path: path)
            guard case .string(let raw)? = members["event"] else {
                throw .invalid("missing_field", "A waitFor step needs event: the slug to wait for.", field: "\(path).event")
            }
            let event = try slug(raw, field: "\(path).event")
            guard let timeout = members["timeout"] else {
                throw .invalid("missing_field", "A waitFor step needs timeout: how long to wait at most.", field: "\(path).timeout")
            }
            var onTimeout = AutomationStep.TimeoutAction.continue
            switch members["onTimeout"] {
            case nil, .null?: break
            case .string(let text)? where AutomationStep.TimeoutAction(rawValue: text) != nil:
                onTimeout = AutomationStep.TimeoutAction(rawValue: text)!
            default:
                throw .invalid("invalid_step", "onTimeout must be \"continue\" or \"exit\".", field: "\(path).onTimeout")
            }
            return .waitFor(event: event, timeout: try duration(timeout, field: "\(path).timeout"), onTimeout: onTimeout)
        case "send":
            try refuseUnknownKeys(members, allowed: ["type", "templateSlug"], path: path)
            guard case .string(let raw)? = members["templateSlug"] else {
                throw .invalid("missing_field", "A send step needs templateSlug.", field: "\(path).templateSlug")
            }
            return .send(templateSlug: try Template.validateSlug(raw, field: "\(path).templateSlug"))
        default:
            try refuseUnknownKeys(members, allowed: ["type", "filter", "else"], path: path)
            guard let filterJSON = members["filter"] else {
                throw .invalid("missing_field", "A condition step needs filter: {\"match\", \"conditions\"}, as a segment's.", field: "\(path).filter")
            }
            let filter = try SegmentFilter(json: filterJSON, field: "\(path).filter")
            let otherwise: AutomationStep.Otherwise
            switch members["else"] {
            case nil, .null?, .string("exit")?:
                otherwise = .exit
            case .object(let target)?:
                try refuseUnknownKeys(target, allowed: ["goTo"], path: "\(path).else")
                guard case .number(let number)? = target["goTo"], number.rounded() == number,
                      number > Double(index), number <= Double(count) else {
                    throw .invalid(
                        "invalid_step", "goTo must be the index of a later step (\(index + 1) to \(count); \(count) means the end).",
                        field: "\(path).else.goTo"
                    )
                }
                otherwise = .goTo(Int(number))
            default:
                throw .invalid("invalid_step", "else must be \"exit\" or {\"goTo\": <index of a later step>}.", field: "\(path).else")
            }
            return .condition(filter, otherwise: otherwise)
        }
    }

    static func refuseUnknownKeys(_ members: [String: JSONValue], allowed: [String], path: String) throws(DomainError) {
        if let key = members.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw .invalid("unknown_field", "Unknown field '\(key.prefix(64))'; allowed here: \(list(allowed)).", field: "\(path).\(key.prefix(64))")
        }
    }

    static func list(_ names: [String]) -> String {
        names.map { "\"\($0)\"" }.joined(separator: ", ")
    }
}

extension AutomationDefinition {
    /// Reads back what ``jsonValue`` stored.
    public init(stored: JSONValue) throws(DomainError) {
        guard case .object(let members) = stored else {
            throw .invalid("invalid_definition", "A stored automation definition is not an object.")
        }
        let exits = try AutomationInput.optionalSlugs(members["exitEvents"], field: "exitEvents", single: false) ?? []
        if case .array(let items)? = members["steps"] {
            self.init(form: .sequence(try AutomationInput.steps(items)), exitEvents: exits)
        } else if case .string(let slug)? = members["templateSlug"] {
            let delay: AutomationDuration? = switch members["delay"] {
            case nil, .null?: nil
            case let value?: try AutomationInput.duration(value, field: "delay")
            }
            self.init(form: .simple(templateSlug: slug, delay: delay), exitEvents: exits)
        } else {
            throw .invalid("invalid_definition", "A stored automation definition has neither steps nor a template.")
        }
    }
}
