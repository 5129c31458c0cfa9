import Foundation
import Synchronization
import Testing
import TidingsApp
import TidingsStorage

@Suite("Group commit")
struct GroupCommitterTests {
    @Test("Concurrent submissions are committed in fewer transactions, each caller gets its own output")
    func concurrentSubmissionsShareTransactions() async throws {
        let batches = Mutex<[[Int]]>([])
        let committer = GroupCommitter<Int, Int>(maxBatch: 8) { items in
            batches.withLock { $0.append(items) }
            try await Task.sleep(for: .milliseconds(5))
            return items.map { $0 * 10 }
        }
        let outputs = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for item in 0..<100 {
                group.addTask { (item, try await committer.submit(item)) }
            }
            return try await group.reduce(into: [Int: Int]()) { $0[$1.0] = $1.1 }
        }
        #expect(outputs.count == 100)
        #expect(outputs.allSatisfy { $0.value == $0.key * 10 })
        let seen = batches.withLock { $0 }
        #expect(seen.flatMap { $0 }.sorted() == Array(0..<100), "every item committed exactly once")
        #expect(seen.count < 100, "some transactions carried several items")
        #expect(seen.allSatisfy { $0.count <= 8 })
    }

    @Test("An item that cannot be written fails only its own caller; the rest of its batch commits")
    func failureStaysWithItsItem() async throws {
        struct Poisoned: Error {}
        let committer = GroupCommitter<String, String>(maxBatch: 16) { items in
            try await Task.sleep(for: .milliseconds(2))
            if items.contains("poison") { throw Poisoned() }
            return items.map { $0.uppercased() }
        }
        let results = await withTaskGroup(of: (String, Result<String, any Error>).self) { group in
            for item in ["a", "b", "poison", "c", "d", "e", "f", "g"] {
                group.addTask {
                    do { return (item, .success(try await committer.submit(item))) } catch { return (item, .failure(error)) }
                }
            }
            return await group.reduce(into: [String: Result<String, any Error>]()) { $0[$1.0] = $1.1 }
        }
        for (item, result) in results {
            if item == "poison" {
                #expect(throws: Poisoned.self) { try result.get() }
            } else {
                #expect(try result.get() == item.uppercased())
            }
        }
    }

    @Test("Events for one new address sent at once create one contact and keep every event", arguments: TestBackend.all)
    func concurrentEventsForANewContact(backend: TestBackend) async throws {
        try await withTidings(backend) { tidings in
            let workspace = try await tidings.makeWorkspace()
            let recorded = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<60 {
                    group.addTask {
                        try await tidings.events.record(
                            workspaceId: workspace.id,
                            body: ["email": .string("burst@example.com"), "slug": .string("clicked"), "properties": .object(["n": .number(Double(index))])], by: .tester
                        ).contactCreated
                    }
                }
                return try await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(recorded.count == 60)
            #expect(recorded.filter { $0 }.count == 1, "exactly one event reports creating the contact")
            let events = try await tidings.contacts.events(workspaceId: workspace.id, email: "burst@example.com", cursor: nil, limit: 100)
            #expect(events.items.count == 60)
            #expect(Set(events.items.compactMap { $0.properties["n"] }).count == 60)
        }
    }
}
