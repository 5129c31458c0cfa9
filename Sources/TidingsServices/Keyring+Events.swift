import Foundation
import TidingsCrypto
import TidingsDomain
import TidingsStorage

extension Keyring {
    static func propertiesContext(of event: ContactEvent) -> SealContext {
        SealContext(workspaceId: event.workspaceId, table: "events", column: "properties", rowId: event.id)
    }

    /// An event's properties as stored: typed JSON, sealed, base64. `nil` when there are none.
    func sealProperties(of event: ContactEvent) async throws -> String? {
        guard let json = EventRepository.encodeProperties(event.properties) else { return nil }
        return try await seal(json, context: Self.propertiesContext(of: event)).base64EncodedString()
    }

    /// The event with its stored properties opened.
    func openProperties(of stored: StoredEvent) async throws -> ContactEvent {
        var event = stored.event
        guard let text = stored.storedProperties else { return event }
        guard let sealed = Data(base64Encoded: text) else { throw SealingError.unrecognisedFormat }
        event.properties = try EventRepository.decodeProperties(try await open(sealed, context: Self.propertiesContext(of: event)))
        return event
    }
}
