import ServiceLifecycle
import SQLKit

public enum DatabaseKind: String, Sendable {
    case sqlite, postgres
}

/// The one door to the database: reads, and writes that run in a transaction.
///
/// Query logging is off on every connection: SQLKit would log bound values,
/// which are personal data.
///
/// Repositories take the `any SQLDatabase` handed to the closure, so everything
/// a use case writes (the change, and later its audit record) commits or rolls
/// back together.
public protocol DatabaseClient: Service {
    var kind: DatabaseKind { get }

    /// Runs `body` with a connection for reading; no transaction is implied.
    func read<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T

    /// Runs `body` inside one transaction: committed when it returns, rolled back when it throws.
    func transaction<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T

    /// Removes the copies of replaced or deleted rows that the database keeps on its own —
    /// SQLite's WAL frames, PostgreSQL's dead row versions — after plaintext in `tables`
    /// has been overwritten with sealed values.
    func discardReplacedContent(of tables: [String]) async throws

    /// Closes every connection.
    func close() async throws
}
