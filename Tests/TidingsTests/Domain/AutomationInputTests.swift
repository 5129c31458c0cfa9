import Foundation
import Testing
@testable import TidingsDomain

/// Reading automation bodies: both forms, defaults, patches onto an existing automation, and
/// every error naming the path of the offending input.
@Suite("Automation input")
struct AutomationInputTests {
    private func body(_ text: String) throws -> [String: JSONValue] {
        guard case .object(let object) = try JSONValue.parse(Array(text.utf8)) else { throw DomainError.invalid("test", "not an object") }
        return object
    }

    private func input(_ text: String, base: Automation? = nil) throws -> AutomationInput {
        try AutomationInput(body: try body(text), base: base)
    }

    private func error(_ text: String, base: Automation? = nil) throws -> DomainError? {
        let object = try body(text)
        return #expect(throws: DomainError.self) { try AutomationInput(body: object, base: base) }
    }

    private func automation(_ input: AutomationInput) -> Automation {
        Automation(
            id: "aut_1", workspaceId: "ws_1", name: input.name, status: input.status, triggerEvent: input.triggerEvent, frequency: input.frequency,
            marketing: input.marketing, topic: input.topic, definition: input.definition, createdAt: .distantPast, updatedAt: .distantPast
        )
    }

    @Test func simpleFormRunsAsAWaitAndASend() throws {
        let parsed = try input(#"{"name": " Welcome ", "templateSlug": "welcome", "triggerEvent": "Signed-Up", "delay": {"amount": 3, "unit": "hours"}}"#)
        #expect(parsed.name == "Welcome")
        #expect(parsed.triggerEvent == "signed-up", "slugs are normalised as events are")
        #expect(parsed.status == .draft && parsed.frequency == .once && !parsed.marketing && parsed.topic == nil, "the defaults")
        #expect(parsed.definition.steps == [.wait(AutomationDuration(amount: 3, unit: .hours)), .send(templateSlug: "welcome")])
        let immediate = try input(#"{"name": "n", "templateSlug": "welcome", "triggerEvent": "contact.created", "delay": null, "frequency": "every"}"#)
        #expect(immediate.definition.steps == [.send(templateSlug: "welcome")])
        #expect(immediate.frequency == .every)
    }

    @Test func sequenceFormReadsEveryStepAndStoresRoundTrip() throws {
        let parsed = try input("""
            {"name": "Onboarding", "triggerEvent": "signup", "exitEvent": "Upgraded", "marketing": true, "topic": "tips", "steps": [
              {"type": "send", "templateSlug": "welcome"},
              {"type": "waitFor", "event": "activated", "timeout": {"amount": 2, "unit": "days"}},
              {"type": "condition", "filter": {"match": "all", "conditions": [{"attribute": "plan", "op": "eq", "value": "free"}]}, "else": {"goTo": 4}},
              {"type": "wait", "duration": {"amount": 30, "unit": "minutes"}},
              {"type": "send", "templateSlug": "tips"}
            ]}
            """)
        #expect(parsed.definition.exitEvents == ["upgraded"])
        #expect(parsed.marketing && parsed.topic == "tips")
        let steps = parsed.definition.steps
        #expect(steps.map(\.type) == ["send", "waitFor", "condition", "wait", "send"])
        #expect(steps[1] == .waitFor(event: "activated", timeout: AutomationDuration(amount: 2, unit: .days), onTimeout: .continue))
        if case .condition(_, let otherwise) = steps[2] { #expect(otherwise == .goTo(4)) } else { Issue.record("not a condition") }
        #expect(try AutomationDefinition(stored: parsed.definition.jsonValue) == parsed.definition)
        #expect(parsed.definition.templateReferences.map(\.field) == ["steps[0].templateSlug", "steps[4].templateSlug"])
    }

    @Test func patchKeepsWhatItDoesNotName() throws {
        let base = automation(try input(#"{"name": "n", "templateSlug": "welcome", "triggerEvent": "signup", "delay": {"amount": 1, "unit": "days"}, "exitEvents": ["bought"]}"#))
        let renamed = try input(#"{"name": "m"}"#, base: base)
        #expect(renamed.name == "m" && renamed.definition == base.definition && renamed.triggerEvent == "signup")
        let otherTemplate = try input(#"{"templateSlug": "hello"}"#, base: base)
        #expect(otherTemplate.definition.steps == [.wait(AutomationDuration(amount: 1, unit: .days)), .send(templateSlug: "hello")], "the delay stays")
        let immediate = try input(#"{"delay": null}"#, base: base)
        #expect(immediate.definition.steps == [.send(templateSlug: "welcome")], "a null delay means immediately")
        let topic = try input(#"{"topic": "news"}"#, base: base)
        #expect(try input(#"{"topic": null}"#, base: automation(topic)).topic == nil)
        let sequence = try input(#"{"steps": [{"type": "send", "templateSlug": "a"}]}"#, base: base)
        #expect(sequence.definition.steps == [.send(templateSlug: "a")] && sequence.definition.exitEvents == ["bought"])
        let delayOnSequence = try error(#"{"delay": {"amount": 1, "unit": "days"}}"#, base: automation(sequence))
        #expect(delayOnSequence?.field == "delay" && delayOnSequence?.code == "conflicting_forms")
    }

    @Test("Every mistake is refused with the path of the offending input", arguments: [
        (#"{"templateSlug": "t", "triggerEvent": "e"}"#, "missing_field", "name"),
        (#"{"name": "n", "templateSlug": "t"}"#, "missing_field", "triggerEvent"),
        (#"{"name": "n", "triggerEvent": "e"}"#, "missing_field", "templateSlug"),
        (#"{"name": " ", "templateSlug": "t", "triggerEvent": "e"}"#, "invalid_name", "name"),
        (#"{"name": "n", "templateSlug": "T!", "triggerEvent": "e"}"#, "invalid_slug", "templateSlug"),
        (#"{"name": "n", "templateSlug": "t", "triggerEvent": "no spaces"}"#, "invalid_slug", "triggerEvent"),
        (#"{"name": "n", "templateSlug": "t", "triggerEvent": "e", "status": "on"}"#, "invalid_status", "status"),
        (#"{"name": "n", "templateSlug": "t", "triggerEvent": "e", "frequency": "twice"}"#, "invalid_frequency", "frequency"),
        (#"{"name": "n", "templateSlug": "t", "triggerEvent": "e", "marketing": "yes"}"#, "invalid_type", "marketing"),
        (#"{"name": "n", "templateSlug": "t", "triggerEvent": "e", "topic": "no topic"}"#, "invalid_topic", "topic"),
        (#"{"name": "n", "templateSlug": "t", "triggerEvent": "e", "colour": "red"}"#, "unknown_field", "colour"),
        (#"{"name": "n", "templateSlug": "t", "triggerEvent": "e", "delay": {"amount": 0, "unit": "days"}}"#, "invalid_duration", "delay.amount"),
        (#"{"name": "n", "templateSlug": "t", "triggerEvent": "e", "delay": {"amount": 1.5, "unit": "days"}}"#, "invalid_duration", "delay.amount"),
        (#"{"name": "n", "templateSlug": "t", "triggerEvent": "e", "delay": {"amount": 366, "unit": "days"}}"#, "invalid_duration", "delay.amount"),
        (#"{"name": "n", "templateSlug": "t", "triggerEvent": "e", "delay": {"amount": 1, "unit": "weeks"}}"#, "invalid_duration", "delay.unit"),
        (#"{"name": "n", "templateSlug": "t", "triggerEvent": "e", "delay": {"amount": 1, "unit": "days", "x": 1}}"#, "unknown_field", "delay.x"),
        (#"{"name": "n", "templateSlug": "t", "triggerEvent": "e", "delay": "soon"}"#, "invalid_type", "delay"),
        (#"{"name": "n", "templateSlug": "t", "triggerEvent": "e", "steps": [{"type": "send", "templateSlug": "t"}]}"#, "conflicting_forms", "templateSlug"),
        (#"{"name": "n", "triggerEvent": "e", "delay": null, "steps": [{"type": "send", "templateSlug": "t"}]}"#, "conflicting_forms", "delay"),
        (#"{"name": "n", "triggerEvent": "e", "steps": []}"#, "invalid_steps", "steps"),
        (#"{"name": "n", "triggerEvent": "e", "steps": [{"type": "wait", "duration": {"amount": 1, "unit": "days"}}]}"#, "invalid_steps", "steps"),
        (#"{"name": "n", "triggerEvent": "e", "steps": "send"}"#, "invalid_type", "steps"),
        (#"{"name": "n", "triggerEvent": "e", "steps": [3]}"#, "invalid_type", "steps[0]"),
        (#"{"name": "n", "triggerEvent": "e", "steps": [{"type": "jump"}]}"#, "invalid_step", "steps[0].type"),
        (#"{"name": "n", "triggerEvent": "e", "steps": [{"type": "send", "templateSlug": "t"}, {"type": "send"}]}"#, "missing_field", "steps[1].templateSlug"),
        (#"{"name": "n", "triggerEvent": "e", "steps": [{"type": "send", "templateSlug": "t"}, {"type": "send", "templateSlug": "Bad Slug"}]}"#, "invalid_slug", "steps[1].templateSlug"),
        (#"{"name": "n", "triggerEvent": "e", "steps": [{"type": "send", "templateSlug": "t", "delay": 1}]}"#, "unknown_field", "steps[0].delay"),
        (#"{"name": "n", "triggerEvent": "e", "steps": [{"type": "wait"}, {"type": "send", "templateSlug": "t"}]}"#, "missing_field", "steps[0].duration"),
        (#"{"name": "n", "triggerEvent": "e", "steps": [{"type": "wait", "duration": {"amount": 2, "unit": "years"}}, {"type": "send", "templateSlug": "t"}]}"#, "invalid_duration", "steps[0].duration.unit"),
        (#"{"name": "n", "triggerEvent": "e", "steps": [{"type": "waitFor", "timeout": {"amount": 1, "unit": "days"}}, {"type": "send", "templateSlug": "t"}]}"#, "missing_field", "steps[0].event"),
        (#"{"name": "n", "triggerEvent": "e", "steps": [{"type": "waitFor", "event": "x"}, {"type": "send", "templateSlug": "t"}]}"#, "missing_field", "steps[0].timeout"),
        (#"{"name": "n", "triggerEvent": "e", "steps": [{"type": "waitFor", "event": "x", "timeout": {"amount": 1, "unit": "days"}, "onTimeout": "retry"}, {"type": "send", "templateSlug": "t"}]}"#, "invalid_step", "steps[0].onTimeout"),
        (#"{"name": "n", "triggerEvent": "e", "steps": [{"type": "condition"}, {"type": "send", "templateSlug": "t"}]}"#, "missing_field", "steps[0].filter"),
        (#"{"name": "n", "triggerEvent": "e", "steps": [{"type": "condition", "filter": {"match": "all", "conditions": [{"attribute": "plan", "op": "like", "value": 1}]}}, {"type": "send", "templateSlug": "t"}]}"#, "invalid_segment_filter", "steps[0].filter.conditions[0].op"),
        (#"{"name": "n", "triggerEvent": "e", "steps": [{"type": "send", "templateSlug": "t"}, {"type": "condition", "filter": {"match": "all", "conditions": [{"event": "x", "op": "did"}]}, "else": {"goTo": 1}}]}"#, "invalid_step", "steps[1].else.goTo"),
        (#"{"name": "n", "triggerEvent": "e", "steps": [{"type": "condition", "filter": {"match": "all", "conditions": [{"event": "x", "op": "did"}]}, "else": {"goTo": 3}}, {"type": "send", "templateSlug": "t"}]}"#, "invalid_step", "steps[0].else.goTo"),
        (#"{"name": "n", "triggerEvent": "e", "steps": [{"type": "condition", "filter": {"match": "all", "conditions": [{"event": "x", "op": "did"}]}, "else": "skip"}, {"type": "send", "templateSlug": "t"}]}"#, "invalid_step", "steps[0].else"),
        (#"{"name": "n", "templateSlug": "t", "triggerEvent": "e", "exitEvent": "e"}"#, "invalid_exit_event", "exitEvent"),
        (#"{"name": "n", "templateSlug": "t", "triggerEvent": "e", "exitEvents": ["x", "E"]}"#, "invalid_exit_event", "exitEvents[1]"),
        (#"{"name": "n", "templateSlug": "t", "triggerEvent": "e", "exitEvents": ["x", 3]}"#, "invalid_type", "exitEvents[1]"),
        (#"{"name": "n", "templateSlug": "t", "triggerEvent": "e", "exitEvent": "x", "exitEvents": ["y"]}"#, "conflicting_fields", "exitEvent"),
    ])
    func mistakesNameTheirField(body: String, code: String, field: String) throws {
        let failure = try error(body)
        #expect(failure?.code == code, "\(failure.map { "\($0)" } ?? "accepted")")
        #expect(failure?.field == field)
    }

    @Test func atMostFiftySteps() throws {
        let steps = Array(repeating: #"{"type": "send", "templateSlug": "t"}"#, count: 51).joined(separator: ",")
        let failure = try error(#"{"name": "n", "triggerEvent": "e", "steps": [\#(steps)]}"#)
        #expect(failure?.code == "too_many_steps" && failure?.field == "steps")
        let fifty = Array(repeating: #"{"type": "send", "templateSlug": "t"}"#, count: 50).joined(separator: ",")
        #expect(try input(#"{"name": "n", "triggerEvent": "e", "steps": [\#(fifty)]}"#).definition.steps.count == 50)
    }

    @Test func enteringAStepSaysWhenItIsDue() throws {
        let definition = try input("""
            {"name": "n", "triggerEvent": "e", "steps": [
              {"type": "wait", "duration": {"amount": 2, "unit": "hours"}},
              {"type": "waitFor", "event": "paid", "timeout": {"amount": 1, "unit": "days"}},
              {"type": "send", "templateSlug": "t"}
            ]}
            """).definition
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(definition.position(entering: 0, at: now) == .step(index: 0, state: .active, waitingFor: nil, dueAt: now.addingTimeInterval(7200)))
        #expect(definition.position(entering: 1, at: now) == .step(index: 1, state: .waiting, waitingFor: "paid", dueAt: now.addingTimeInterval(86400)))
        #expect(definition.position(entering: 2, at: now) == .step(index: 2, state: .active, waitingFor: nil, dueAt: now))
        #expect(definition.position(entering: 3, at: now) == .completed)
    }
}
