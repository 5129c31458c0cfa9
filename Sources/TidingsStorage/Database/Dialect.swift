import SQLKit

// The real differences between the two backends, in one place. Everything else is the
// SQL both accept (TEXT with CHECK for enums, RFC 3339 text timestamps, ON CONFLICT, RETURNING).
//
// - Concurrent migrations: PostgreSQL takes an advisory lock (`pg_advisory_xact_lock`);
//   SQLite's `BEGIN IMMEDIATE` already serialises writers.
// - Finding or creating contacts in bulk: on SQLite a no-op `DO UPDATE ... RETURNING` hands
//   back existing rows too, saving a round trip on the single writer; on PostgreSQL the same
//   statement would leave a dead row version per event, so it inserts and then selects.

extension SQLDatabase {
    var isSQLite: Bool { dialect.name == "sqlite" }
}
