import Foundation
import TidingsCrypto
import TidingsDomain
import TidingsStorage

extension Vault {
    /// An event's properties as stored: typed JSON, sealed. `nil` when there are none.
    func sealProperties(of event: ContactEvent) throws -> String? {
        guard let json = EventRepository.encodeProperties(event.properties) else { return nil }
        return try seal(json, table: "events", column: "properties", row: event.id)
    }

    /// The event with its stored properties opened.
    func openProperties(of stored: StoredEvent) async throws -> ContactEvent {
        var event = stored.event
        guard let text = stored.storedProperties else { return event }
        event.properties = try EventRepository.decodeProperties(try await open(text, table: "events", column: "properties", row: event.id))
        return event
    }
}
