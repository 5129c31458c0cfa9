import Foundation

/// Mail sent on a contact's behalf when something happens: an event (`POST /v1/events`), or
/// the built-in `contact.created` and `contact.updated`.
///
/// An automation is written in one of two forms, and both run as a list of steps:
///
/// - the **simple form**, `{"templateSlug", "delay"}`: send one template, immediately
///   (`delay` null) or after a delay; it runs as `[wait(delay)?, send(templateSlug)]`;
/// - the **sequence form**, `{"steps": [...]}`: waits, waits for an event, sends and
///   conditions (see ``AutomationStep``).
///
/// The shape, validation and meaning live here; `AutomationDefinition+Parsing.swift` reads
/// them from requests.
public struct Automation: Sendable, Equatable {
    public var id: String
    public var workspaceId: String
    public var name: String
    public var status: AutomationStatus
    /// The event slug that enrols a contact.
    public var triggerEvent: String
    public var frequency: AutomationFrequency
    /// Not transactional: unsubscribed contacts are not sent to, and messages carry `List-Unsubscribe`.
    public var marketing: Bool
    /// The slug of the topic the messages are sent under, if any.
    public var topic: String?
    public var definition: AutomationDefinition
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: String, workspaceId: String, name: String, status: AutomationStatus, triggerEvent: String, frequency: AutomationFrequency,
        marketing: Bool, topic: String?, definition: AutomationDefinition, createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.workspaceId = workspaceId
        self.name = name
        self.status = status
        self.triggerEvent = triggerEvent
        self.frequency = frequency
        self.marketing = marketing
        self.topic = topic
        self.definition = definition
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// Every slug whose events this automation must see: its trigger, the events its steps
    /// wait for, and its exit events.
    public var listenedSlugs: Set<String> {
        var slugs = Set(definition.exitEvents)
        slugs.insert(triggerEvent)
        for step in definition.steps {
            if case .waitFor(let event, _, _) = step { slugs.insert(event) }
        }
        return slugs
    }

    /// The events Tidings raises itself, which automations may use like recorded events.
    public static let builtInEvents = ["contact.created", "contact.updated"]
    /// The most steps a sequence may have.
    public static let maxSteps = 50
    /// The most exit events.
    public static let maxExitEvents = 10
    /// The longest name, in characters.
    public static let maxNameLength = 200
}

public enum AutomationStatus: String, Sendable, CaseIterable, Equatable {
    /// Being written: nothing runs, templates need not exist yet.
    case draft
    /// Enrols contacts and runs their steps.
    case enabled
    /// Enrols nobody; steps that fall due wait until the automation is enabled again.
    case paused
    /// Switched off: enrolments in progress were cancelled.
    case disabled

    /// Whether enrolments go on (or, while paused, wait) in this status.
    public var keepsEnrolments: Bool { self == .enabled || self == .paused }
}

public enum AutomationFrequency: String, Sendable, CaseIterable, Equatable {
    /// A contact is enrolled at most once, ever.
    case once
    /// Every trigger event enrols the contact again, even while an earlier enrolment runs.
    case every
}

/// A length of time as written: `{"amount": 3, "unit": "days"}`.
public struct AutomationDuration: Hashable, Sendable {
    public enum Unit: String, Sendable, CaseIterable {
        case minutes, hours, days

        var seconds: TimeInterval {
            switch self {
            case .minutes: 60
            case .hours: 3600
            case .days: 86400
            }
        }
    }

    public var amount: Int
    public var unit: Unit

    /// The longest wait or timeout.
    public static let maxSeconds: TimeInterval = 365 * 86400

    public init(amount: Int, unit: Unit) {
        self.amount = amount
        self.unit = unit
    }

    public var seconds: TimeInterval { TimeInterval(amount) * unit.seconds }

    public var jsonValue: JSONValue {
        .object(["amount": .number(Double(amount)), "unit": .string(unit.rawValue)])
    }
}

/// One step of a sequence.
///
/// Steps run in order. A condition may jump forward (never back), so every step of an
/// enrolment runs at most once and a sequence always ends.
public enum AutomationStep: Hashable, Sendable {
    /// Waits this long.
    case wait(AutomationDuration)
    /// Waits until the contact does `event` (an event recorded after the step began), at most
    /// `timeout`; then continues, or exits the sequence.
    case waitFor(event: String, timeout: AutomationDuration, onTimeout: TimeoutAction)
    /// Sends the template's current version to the contact.
    case send(templateSlug: String)
    /// Continues when the contact matches `filter` (its attributes and past events, as a
    /// segment's filter judges them); otherwise does `otherwise`.
    case condition(SegmentFilter, otherwise: Otherwise)

    public enum TimeoutAction: String, Sendable, CaseIterable, Hashable {
        case `continue`, exit
    }

    /// What a condition that does not hold does.
    public enum Otherwise: Hashable, Sendable {
        /// Ends the enrolment (`exited`, reason `condition_not_met`).
        case exit
        /// Goes on at this later step; the number of steps means "the end" (`completed`).
        case goTo(Int)
    }

    public var type: String {
        switch self {
        case .wait: "wait"
        case .waitFor: "waitFor"
        case .send: "send"
        case .condition: "condition"
        }
    }

    public var jsonValue: JSONValue {
        switch self {
        case .wait(let duration):
            return .object(["type": .string(type), "duration": duration.jsonValue])
        case .waitFor(let event, let timeout, let onTimeout):
            return .object([
                "type": .string(type), "event": .string(event), "timeout": timeout.jsonValue, "onTimeout": .string(onTimeout.rawValue),
            ])
        case .send(let slug):
            return .object(["type": .string(type), "templateSlug": .string(slug)])
        case .condition(let filter, let otherwise):
            let elseValue: JSONValue = switch otherwise {
            case .exit: .string("exit")
            case .goTo(let index): .object(["goTo": .number(Double(index))])
            }
            return .object(["type": .string(type), "filter": filter.jsonValue, "else": elseValue])
        }
    }
}

/// What an automation does once a contact is enrolled.
public struct AutomationDefinition: Hashable, Sendable {
    /// How the automation was written; both run as ``steps``.
    public enum Form: Hashable, Sendable {
        case simple(templateSlug: String, delay: AutomationDuration?)
        case sequence([AutomationStep])
    }

    public var form: Form
    /// Events that end an enrolment in progress whenever the contact does them.
    public var exitEvents: [String]

    public init(form: Form, exitEvents: [String] = []) {
        self.form = form
        self.exitEvents = exitEvents
    }

    /// The steps that run: the simple form is a wait (when it has a delay) and a send.
    public var steps: [AutomationStep] {
        switch form {
        case .simple(let slug, let delay):
            return (delay.map { [AutomationStep.wait($0)] } ?? []) + [.send(templateSlug: slug)]
        case .sequence(let steps):
            return steps
        }
    }

    /// The templates the steps send, each with the request field that names it.
    public var templateReferences: [(slug: String, field: String)] {
        switch form {
        case .simple(let slug, _):
            return [(slug, "templateSlug")]
        case .sequence(let steps):
            return steps.enumerated().compactMap { index, step in
                if case .send(let slug) = step { (slug, "steps[\(index)].templateSlug") } else { nil }
            }
        }
    }

    /// What is stored (sealed) and read back with ``init(stored:)``.
    public var jsonValue: JSONValue {
        var members: [String: JSONValue] = ["exitEvents": .array(exitEvents.map(JSONValue.string))]
        switch form {
        case .simple(let slug, let delay):
            members["templateSlug"] = .string(slug)
            members["delay"] = delay?.jsonValue ?? .null
        case .sequence(let steps):
            members["steps"] = .array(steps.map(\.jsonValue))
        }
        return .object(members)
    }

    /// Whether `other` has the same steps, in number and kind: enrolments in progress, which
    /// are at a step index, keep their meaning.
    public func hasSameShape(as other: AutomationDefinition) -> Bool {
        steps.map(\.type) == other.steps.map(\.type)
    }
}

// MARK: - Enrolments

/// Where an enrolment stands.
public enum EnrolmentState: String, Sendable, CaseIterable, Equatable {
    /// A step is due at `wakeAt` (a wait ends, or a send or condition runs).
    case active
    /// Waiting for an event, at most until `wakeAt`.
    case waiting
    /// Every step ran.
    case completed
    /// Left the sequence: an exit event, a condition that did not hold, a wait that timed out.
    case exited
    /// Stopped from outside: the automation was disabled, the contact deleted, bounced or unsubscribed.
    case cancelled

    public var isInProgress: Bool { self == .active || self == .waiting }
}

/// One contact going through one automation, once per trigger.
public struct AutomationEnrolment: Sendable, Equatable {
    public var id: String
    public var workspaceId: String
    public var automationId: String
    /// `nil` once the contact was deleted.
    public var contactId: String?
    /// The event (or built-in trigger) that enrolled the contact.
    public var triggerId: String
    public var stepIndex: Int
    public var state: EnrolmentState
    public var waitingFor: String?
    public var wakeAt: Date?
    /// Why it ended, for `exited` and `cancelled` (e.g. `exit_event`, `contact_deleted`).
    public var reason: String?
    public var createdAt: Date
    public var updatedAt: Date
    public var finishedAt: Date?

    public init(
        id: String, workspaceId: String, automationId: String, contactId: String?, triggerId: String, stepIndex: Int, state: EnrolmentState,
        waitingFor: String? = nil, wakeAt: Date? = nil, reason: String? = nil, createdAt: Date, updatedAt: Date, finishedAt: Date? = nil
    ) {
        self.id = id
        self.workspaceId = workspaceId
        self.automationId = automationId
        self.contactId = contactId
        self.triggerId = triggerId
        self.stepIndex = stepIndex
        self.state = state
        self.waitingFor = waitingFor
        self.wakeAt = wakeAt
        self.reason = reason
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.finishedAt = finishedAt
    }
}

/// Where an enrolment goes when it enters a step: the state, what it waits for and when its
/// step falls due; or the end of the sequence.
public enum EnrolmentPosition: Equatable, Sendable {
    case step(index: Int, state: EnrolmentState, waitingFor: String?, dueAt: Date)
    case completed
}

extension AutomationDefinition {
    /// The position of an enrolment that enters step `index` at `now`: a wait is due when it
    /// ends, a wait for an event when it times out, a send or condition at once; past the
    /// last step the enrolment is complete.
    public func position(entering index: Int, at now: Date) -> EnrolmentPosition {
        let steps = steps
        guard index < steps.count else { return .completed }
        switch steps[index] {
        case .wait(let duration):
            return .step(index: index, state: .active, waitingFor: nil, dueAt: now.addingTimeInterval(duration.seconds))
        case .waitFor(let event, let timeout, _):
            return .step(index: index, state: .waiting, waitingFor: event, dueAt: now.addingTimeInterval(timeout.seconds))
        case .send, .condition:
            return .step(index: index, state: .active, waitingFor: nil, dueAt: now)
        }
    }
}

/// Per-automation figures.
public struct AutomationStats: Sendable, Equatable {
    /// Enrolments ever made.
    public var enrolled = 0
    /// Active or waiting.
    public var inProgress = 0
    public var completed = 0
    public var exited = 0
    public var cancelled = 0
    /// Messages the steps queued.
    public var sent = 0
    /// Exited and cancelled enrolments by reason.
    public var reasons: [String: Int] = [:]

    public init() {}
}

/// A step an enrolment ran: `waited`, `timed_out`, `event`, `sent`, `condition_met`,
/// `condition_not_met`; a send step names the message it queued.
public struct AutomationStepRun: Sendable, Equatable {
    public var stepIndex: Int
    public var outcome: String
    public var messageId: String?
    public var at: Date

    public init(stepIndex: Int, outcome: String, messageId: String?, at: Date) {
        self.stepIndex = stepIndex
        self.outcome = outcome
        self.messageId = messageId
        self.at = at
    }
}
