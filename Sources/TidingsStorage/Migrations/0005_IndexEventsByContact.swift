import SQLKit

/// Deleting a contact cascades to its events by `contact_id`; without this index
/// every delete would scan the events table while holding the writer.
struct IndexEventsByContact: Migration {
    let number = 5
    let name = "IndexEventsByContact"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        try await execute(["CREATE INDEX events_contact_id ON events (contact_id)"], on: db)
    }
}
